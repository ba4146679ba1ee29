#!/usr/bin/env bash
# The shipped `clipcap run` configs (launch/examples/*.json) run as shipped,
# with only their paths substituted: `clipcap synth` data of the layout each
# names and tiny models (tests/fixtures/clip/tiny, the learn GPT-2 split into
# a weights folder and a tokenizer folder, which run joins for caption and
# eval). The recipes are kept as shipped (the paper's batch 40, 10 epochs):
# on 48 images that is a few dozen steps. Only the longest caption is cut
# to fit the tiny GPT-2's 64 positions.
#
#   coco-karpathy.json   (mpirun -np 2) every stage; the eval folder holds
#                        results, scores and the control's scores; a re-run
#                        skips every stage; a stage marked interrupted is
#                        resumed (train with --resume); --only / --from; a
#                        changed recipe is refused with the train folder named
#   cc-img2dataset.json  (one process) webdataset tars: shard, extract,
#                        train, caption; no eval split, so no eval
#   nightly-extract.json (mpirun -np 2) shard + extract only; after the
#                        annotation file changes, shard re-runs and extract
#                        encodes nothing new
source "$(dirname "$0")/lib.bash"
PY=/usr/bin/python3
src="${CLIPCAP_SOURCE:?set by ctest}"
fx="$CLIPCAP_FIXTURES"
fail() { echo "FAIL: $*" >&2; exit 1; }

"$CLIPCAP" synth --out "$tmp/data" --count 48 --large 0 --layouts coco,karpathy,cc-tar,cc-tsv >/dev/null 2>"$tmp/synth.log"
mkdir -p "$tmp/gpt2" "$tmp/tok"
cp "$fx/clip/learn/gpt2/config.json" "$fx/clip/learn/gpt2/model.safetensors" "$tmp/gpt2/"
cp "$fx/clip/learn/gpt2/vocab.json" "$fx/clip/learn/gpt2/merges.txt" "$tmp/tok/"

# config NAME OUT: launch/examples/NAME.json with its paths replaced -> OUT
config() {
  "$PY" - "$src/launch/examples/$1.json" "$2" "$tmp" "$fx" <<'EOF'
import json, sys
src, dst, tmp, fx = sys.argv[1:]
c = json.load(open(src))
d = c["data"]
d["inputs"] = [{"dataset_coco.json": f"{tmp}/data/karpathy/dataset_coco.json",
                "Train_GCC-training.tsv": f"{tmp}/data/cc/Train_GCC-training.tsv",
                "captions_train2014.json": f"{tmp}/data/coco/annotations/captions_train2014.json",
                "captions_val2014.json": f"{tmp}/data/coco/annotations/captions_val2014.json"}[p.split("/")[-1]]
               for p in d["inputs"]]
d["images_root"] = f"{tmp}/data/cc/wds" if d["format"] == "cc-tar" else f"{tmp}/data/coco"
c["models"] = {"clip": f"{fx}/clip/tiny", "gpt2": f"{tmp}/gpt2", "tokenizer": f"{tmp}/tok"}
c["out"] = f"{tmp}/run-" + src.split("/")[-1][:-5]
# The tiny GPT-2 has 64 positions: prefix 10 + 24 tokens fit.
for sec in ("eval", "caption"):
    c.setdefault(sec, {})["max_tokens"] = 24
json.dump(c, open(dst, "w"), indent=1)
EOF
}

# ---------------------------------------------------------------- COCO, Karpathy split
config coco-karpathy "$tmp/coco.json"
out="$tmp/run-coco-karpathy"
on_ranks 2 "$CLIPCAP" run "$tmp/coco.json" >"$tmp/coco.out" 2>"$tmp/coco.log" || { tail -20 "$tmp/coco.log"; fail "coco run"; }
for f in manifest/index.json manifest/references.json store train/state.json eval/results.json eval/scores.json \
         eval/control-results.json eval/control-scores.json captions/index.json logs/train.out; do
  [ -e "$out/$f" ] || fail "coco run: $out/$f missing"
done
"$PY" - "$out" <<'EOF' || fail "coco run outputs"
import json, sys
out = sys.argv[1]
state = json.load(open(f"{out}/train/state.json"))
cfg = state["config"]
# The paper's MLP recipe, as shipped.
for k, v in {"prefix_len": 10, "batch": 40, "epochs": 10}.items():
    assert cfg.get(k) == v, (k, cfg.get(k), v)
res = json.load(open(f"{out}/eval/results.json"))
ctl = json.load(open(f"{out}/eval/control-results.json"))
refs = json.load(open(f"{out}/manifest/references.json"))
test_ids = {im["id"] for im in refs["images"]} if "images" in refs else {a["image_id"] for a in refs["annotations"]}
assert {r["image_id"] for r in res} == test_ids, "eval did not caption exactly the test split"
assert [r["image_id"] for r in ctl] == [r["image_id"] for r in res]
assert [r["caption"] for r in ctl] == [r["caption"] for r in res[1:] + res[:1]], "control is not the rotated captions"
for f in ("scores.json", "control-scores.json"):
    s = json.load(open(f"{out}/eval/{f}"))
    assert isinstance(s["CIDEr"], float) and isinstance(s["Bleu_4"], float), f
EOF
grep -q "CIDEr" "$tmp/coco.out" || fail "coco run: no metrics in the summary"

# A re-run skips every stage.
on_ranks 2 "$CLIPCAP" run "$tmp/coco.json" >"$tmp/coco2.out" 2>"$tmp/coco2.log" || fail "coco re-run"
n=$(grep -c "skipped (complete)" "$tmp/coco2.out" || true)
[ "$n" = 5 ] || { cat "$tmp/coco2.out"; fail "coco re-run skipped $n stages, expected 5 (shard .. caption)"; }

# An interrupted train (its marker says incomplete) resumes with --resume;
# the stages after it follow, since they read its output.
"$PY" - "$out/train/.clipcap-run.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1])); m["complete"] = False; json.dump(m, open(sys.argv[1], "w"))
EOF
"$CLIPCAP" run "$tmp/coco.json" --from train >"$tmp/coco3.out" 2>"$tmp/coco3.log" || { tail "$tmp/coco3.log"; fail "coco resume"; }
grep -q "train -> .* (resuming)" "$tmp/coco3.log" || fail "train was not resumed"
grep -q "train  *resumed" "$tmp/coco3.out" || fail "summary does not say train resumed"
grep -q '"step"' "$out/logs/train.out" && fail "resumed train re-ran steps of a finished run"

# --only runs one stage (complete: skipped); a stage whose input is not
# complete is refused.
"$CLIPCAP" run "$tmp/coco.json" --only eval >"$tmp/only.out" 2>&1 || fail "--only eval"
grep -q "eval: complete for this config" "$tmp/only.out" || fail "--only eval did not skip the complete eval"
rm "$out/store/.clipcap-run.json"
"$CLIPCAP" run "$tmp/coco.json" --only train >"$tmp/only2.out" 2>&1 && fail "--only train ran without a complete extract"
grep -q "train needs the extract stage" "$tmp/only2.out" || fail "--only train: wrong refusal: $(cat "$tmp/only2.out")"

# Another recipe into the same run folder: train is refused, naming it.
"$PY" - "$tmp/coco.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1])); c["recipe"]["epochs"] = 3; json.dump(c, open(sys.argv[1], "w"))
EOF
"$CLIPCAP" run "$tmp/coco.json" >"$tmp/other.out" 2>&1 && fail "a changed recipe was run into the old train folder"
grep -q "$out/train: made by another configuration" "$tmp/other.out" || fail "changed recipe: $(tail -2 "$tmp/other.out")"

# ---------------------------------------------------------------- Conceptual Captions, webdataset
config cc-img2dataset "$tmp/cc.json"
out="$tmp/run-cc-img2dataset"
"$CLIPCAP" run "$tmp/cc.json" >"$tmp/cc.out" 2>"$tmp/cc.log" || { tail -20 "$tmp/cc.log"; fail "cc run"; }
for f in manifest/index.json store train/state.json captions/index.json; do
  [ -e "$out/$f" ] || fail "cc run: $out/$f missing"
done
[ -e "$out/eval" ] && fail "cc run: eval ran without an eval split"
grep -q "^  eval " "$tmp/cc.out" && fail "cc run: eval in the summary"

# ---------------------------------------------------------------- nightly re-extraction
config nightly-extract "$tmp/nightly.json"
out="$tmp/run-nightly-extract"
on_ranks 2 "$CLIPCAP" run "$tmp/nightly.json" >"$tmp/n1.out" 2>"$tmp/n1.log" || { tail "$tmp/n1.log"; fail "nightly run"; }
[ -e "$out/train" ] && fail "nightly: train ran"
enc=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["encoded"])' "$out/store/extract-summary.json")
[ "$enc" -gt 20 ] || fail "nightly: first extraction encoded $enc images"
touch "$tmp/data/coco/annotations/captions_val2014.json"
on_ranks 2 "$CLIPCAP" run "$tmp/nightly.json" >"$tmp/n2.out" 2>"$tmp/n2.log" || { tail "$tmp/n2.log"; fail "nightly re-run"; }
grep -q "shard -> .*(inputs changed" "$tmp/n2.log" || fail "nightly: shard did not re-run on a changed annotation file"
enc=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["encoded"])' "$out/store/extract-summary.json")
[ "$enc" = 0 ] || fail "nightly re-run encoded $enc images, expected 0"
echo "run_examples: coco (np 2), cc, nightly (np 2) ok"
