#!/usr/bin/env bash
# `clipcap report` on a run folder built by chaining the stages by hand
# (the layout `clipcap run` writes: manifest/ store/ train/ eval/ captions/),
# opened in headless Chromium (Debian's `chromium`):
#   - the DOM holds a loss and a learning-rate <polyline> with as many points
#     as train/log.jsonl has steps, one metric row per COCO metric whose
#     values are eval/scores.json's, the failure reasons of manifest/ and
#     store/ summaries, a per-image CIDEr-D histogram over every scored image,
#     and one <img> per gallery entry, each a WebP that our decoder decodes;
#   - a caption with markup (planted in eval/results.json) shows as text;
#   - the screenshot is not blank (many distinct colours, decoded with our
#     PNG decoder through `clipcap preprocess`);
#   - a folder with only train/ still gets a report that lists what is missing;
#   - caption/eval with a GPT-2 folder lacking vocab.json + merges.txt say to
#     pass --tokenizer, and work with it (the tokenizer given once, not copied).
set -euo pipefail
source "$(dirname "$0")/lib.bash"
command -v chromium >/dev/null || { echo "chromium is not installed (launch/deps.sh installs it)" >&2; exit 1; }
fx="$CLIPCAP_FIXTURES"
export OMP_NUM_THREADS=1
R="$tmp/run"
mkdir -p "$R/eval"
"$CLIPCAP" synth --out "$tmp/data" --count 16 --bad >/dev/null 2>"$tmp/synth.log"
"$CLIPCAP" shard --format coco --input "$tmp/data/coco/annotations/captions_train2014.json" \
  --images-root "$tmp/data/coco" --gpt2 "$fx/gpt2" --shards 2 --out "$R/manifest" \
  --write-annotations "train2014:$tmp/references.json" >/dev/null 2>"$tmp/shard.log"
"$CLIPCAP" extract --manifest "$R/manifest" --clip "$fx/clip/tiny" --store "$R/store" >/dev/null 2>"$tmp/extract.log"
"$CLIPCAP" train --manifest "$R/manifest" --store "$R/store" --gpt2 "$fx/train/gpt2_fullvocab" --mapping mlp \
  --prefix-len 4 --batch 8 --epochs 1 --lr 1e-2 --warmup 2 --out "$R/train" >/dev/null 2>"$tmp/train.log"
# GPT-2 without its tokenizer files: caption/eval say so, then take it from --tokenizer
g="$fx/train/gpt2_fullvocab"
ckpt=$(ls "$R"/train/model-step-*.safetensors | tail -1)
if "$CLIPCAP" caption --manifest "$R/manifest" --store "$R/store" --model "$ckpt" --gpt2 "$g" --out "$tmp/nocap" 2>"$tmp/notok.log"; then
  echo "caption ran without a tokenizer" >&2
  exit 1
fi
grep -q "pass --tokenizer DIR" "$tmp/notok.log"
"$CLIPCAP" caption --manifest "$R/manifest" --store "$R/store" --model "$ckpt" --gpt2 "$g" --tokenizer "$fx/gpt2" \
  --max-tokens 6 --out "$R/captions" >/dev/null 2>"$tmp/caption.log"
"$CLIPCAP" eval --manifest "$R/manifest" --split train2014 --skip-failed --store "$R/store" --model "$ckpt" \
  --gpt2 "$g" --tokenizer "$fx/gpt2" --max-tokens 6 --annotations "$tmp/references.json" --results "$R/eval/results.json" \
  --per-image >"$R/eval/scores.json" 2>"$tmp/eval.log"
# markup in data must be escaped: plant some in the first generated caption
python3 - "$R/eval/results.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
r[0]["caption"] = "<i>evil</i> & \"q\" 'a'"
json.dump(r, open(sys.argv[1], "w"))
PY
"$CLIPCAP" report "$R" --gallery 6 --out "$tmp/report.html" 2>"$tmp/report.log"
# one process: start-up is half as long as with its zygote and helpers
chrome() { timeout 120 chromium --headless --no-sandbox --disable-gpu --single-process --no-zygote --hide-scrollbars --user-data-dir="$tmp/$1" "${@:2}" 2>/dev/null; }
chrome prof1 --dump-dom "file://$tmp/report.html" >"$tmp/dom.html" &
dom_pid=$!
chrome prof2 --window-size=1000,1200 --screenshot="$tmp/shot.png" "file://$tmp/report.html" >/dev/null
wait "$dom_pid"
"$CLIPCAP" preprocess "$tmp/shot.png" --size 224 --out "$tmp/shot.npy" >/dev/null
python3 "$(dirname "$0")/report_check.py" "$R" "$tmp/dom.html" "$tmp/shot.npy" "$tmp/img"
for f in "$tmp"/img/*.webp; do
  "$CLIPCAP" preprocess "$f" --size 16 --out "$tmp/img.npy" | grep -q '"webp"' || { echo "gallery image $f does not decode as WebP" >&2; exit 1; }
done

# a partial run: only train/
P="$tmp/partial"
mkdir -p "$P"
cp -r "$R/train" "$P/"
"$CLIPCAP" report "$P" 2>"$tmp/report2.log"
for part in "Metrics" "Gallery" "Manifest summary" "Feature store summary"; do
  grep -q "<li><b>$part</b>" "$P/report.html" || { echo "partial report does not list '$part' as missing" >&2; exit 1; }
done
grep -q 'class="curve-loss"' "$P/report.html"
echo "report: ok"
