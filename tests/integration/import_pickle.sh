#!/usr/bin/env bash
# `clipcap import` of the paper's features file (tests/gen/gen_import_fixtures.py
# writes it with torch + pickle.dump exactly as parse_coco.py does: one fp16
# row per caption, tensors inside a plain pickle), then `clipcap train` on
# the result:
#   - the manifest holds every image with its captions (tokenised);
#   - the store holds one embedding per image, equal to the pickle's rows
#     (fp16 kept exactly; compared with the generator's values to the 9
#     significant digits `store dump` prints);
#   - the image whose duplicate rows disagree is a failure with reason
#     inconsistent_duplicates, not an embedding;
#   - --annotations naming another file's captions is refused;
#   - two ranks write the same manifest and store;
#   - train runs a few steps on it, with GPT-2 given as model.safetensors and
#     as pytorch_model.bin (an older hub snapshot): the same checkpoint bytes.
set -euo pipefail
source "$(dirname "$0")/lib.bash"
fx="$CLIPCAP_FIXTURES"
export OMP_NUM_THREADS=1
"$CLIPCAP" import "$fx/import/features.pkl" --annotations "$fx/import/train_caption.json" --gpt2 "$fx/gpt2" \
  --out "$tmp/run" >"$tmp/summary.json" 2>"$tmp/import.log"
"$CLIPCAP" store dump --store "$tmp/run/store" --format jsonl --out "$tmp/dump.jsonl" 2>/dev/null
"$CLIPCAP" store stats --store "$tmp/run/store" >"$tmp/stats.json" 2>/dev/null
python3 - "$fx/import" "$tmp" <<'PY'
import json, sys
fx, tmp = sys.argv[1:3]
want = json.load(open(fx + "/expected.json"))
got = {}
for line in open(tmp + "/dump.jsonl"):
    r = json.loads(line)
    got[r["key"]] = r["embedding"]
agree = {k for k, v in want.items() if v["agree"]}
assert set(got) == agree, ("embeddings for", sorted(got), "expected", sorted(agree))
for k in agree:
    assert all(abs(a - b) <= 1e-8 * abs(b) for a, b in zip(got[k], want[k]["embedding"])) and len(got[k]) == len(want[k]["embedding"]), \
        ("image", k, "differs from the pickle's row")
stats = json.load(open(tmp + "/stats.json"))
assert stats["failures_by_reason"] == {"inconsistent_duplicates": len(want) - len(agree)}, stats["failures_by_reason"]
man = json.load(open(tmp + "/run/manifest/index.json"))
caps = json.load(open(fx + "/train_caption.json"))
assert man["images"] == len(want) and man["captions"] == len(caps), (man["images"], man["captions"])
print("import: %d embeddings, %d failure, %d captions" % (len(got), len(want) - len(agree), man["captions"]))
PY

# two ranks: the same manifest and store
on_ranks 2 "$CLIPCAP" import "$fx/import/features.pkl" --gpt2 "$fx/gpt2" --out "$tmp/run2" >/dev/null 2>"$tmp/import2.log"
cmp "$tmp/run/manifest/shard-00000-of-00001.jsonl.zst" "$tmp/run2/manifest/shard-00000-of-00001.jsonl.zst"
"$CLIPCAP" store dump --store "$tmp/run2/store" --format jsonl --out "$tmp/dump2.jsonl" 2>/dev/null
cmp "$tmp/dump.jsonl" "$tmp/dump2.jsonl"

# a caption that is not in the annotations file: refused, naming it
python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); a[3]["caption"]="something else"; json.dump(a, open(sys.argv[2], "w"))' \
  "$fx/import/train_caption.json" "$tmp/other.json"
if "$CLIPCAP" import "$fx/import/features.pkl" --annotations "$tmp/other.json" --gpt2 "$fx/gpt2" --out "$tmp/bad" 2>"$tmp/bad.log"; then
  echo "import accepted a pickle that does not match --annotations" >&2
  exit 1
fi
grep -q "caption 3 (id 1003) differs" "$tmp/bad.log"

# train reads it (32-dim features, tiny GPT-2 from safetensors, then from pytorch_model.bin)
for g in "$fx/train/gpt2_fullvocab" "$fx/import/gpt2_pt"; do
  out="$tmp/run/train-$(basename "$g")"
  "$CLIPCAP" train --manifest "$tmp/run/manifest" --store "$tmp/run/store" --gpt2 "$g" --mapping mlp \
    --prefix-len 2 --batch 4 --epochs 1 --lr 1e-3 --warmup 1 --out "$out" >/dev/null 2>"$tmp/train.log"
  [ "$(wc -l <"$out/log.jsonl")" -ge 3 ]
done
cmp "$tmp"/run/train-gpt2_fullvocab/model-step-*.safetensors "$tmp"/run/train-gpt2_pt/model-step-*.safetensors
echo "import_pickle: ok"
