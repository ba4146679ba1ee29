#!/usr/bin/env bash
# `clipcap eval` end to end: caption the Karpathy test split of a synthetic
# manifest from the feature store, gather on rank 0, write the COCO results
# file and score it.
#  - the results file has exactly one caption per test image, named by the
#    COCO image id (an integer, as in the annotation file);
#  - its captions are the ones the corpus dump writes for the same keys
#    (another code path over the same captioner);
#  - stdout is one JSON object with the toolkit's keys, and it is exactly
#    what `clipcap score --subset` prints for the written results (the
#    same code); with the whole captions_val2014.json as references (more
#    images than the split, as users run it) only the split is scored;
#  - mpirun -np 2 writes the same results file and scores;
#  - a split without embeddings, an unknown split and a missing flag are
#    clear errors; images whose extraction failed are an error too (naming
#    --skip-failed), unless --skip-failed leaves them out (logged, not
#    silently); these and annotations that lack the split's images are
#    found before any captioning;
#  - without --split: the manifest's only split, or an error listing them.
source "$(dirname "$0")/caption_dump_lib.bash"

make_data 40
ann="$WORK/test_ann.json"
ev=("$CLIPCAP" eval --manifest "$WORK/man" --split test --store "$WORK/store" --model "$MODEL" --gpt2 "$GPT2"
    --annotations "$ann" --batch 2)

"${ev[@]}" --results "$WORK/r1.json" >"$WORK/s1.json" 2>"$WORK/e1.log" || { cat "$WORK/e1.log"; fail "eval np 1"; }
"${MPI2[@]}" "${ev[@]}" --results "$WORK/r2.json" >"$WORK/s2.json" 2>"$WORK/e2.log" || { cat "$WORK/e2.log"; fail "eval np 2"; }
cmp "$WORK/r1.json" "$WORK/r2.json" || fail "np 1 and np 2 results differ"
cmp "$WORK/s1.json" "$WORK/s2.json" || fail "np 1 and np 2 scores differ"
"$CLIPCAP" score --results "$WORK/r1.json" --annotations "$ann" --subset >"$WORK/score.json"
cmp "$WORK/s1.json" "$WORK/score.json" || fail "eval's scores are not clipcap score's"
val2014="$WORK/syn/coco/annotations/captions_val2014.json"
"${ev[@]}" --annotations "$val2014" --results "$WORK/r3.json" >"$WORK/s3.json" 2>"$WORK/e3.log" ||
    { cat "$WORK/e3.log"; fail "eval against captions_val2014.json"; }
cmp "$WORK/r1.json" "$WORK/r3.json" || fail "results depend on the annotation file"
"$CLIPCAP" score --results "$WORK/r3.json" --annotations "$val2014" --subset >"$WORK/score3.json"
cmp "$WORK/s3.json" "$WORK/score3.json" || fail "eval's scores (val2014 references) are not clipcap score's"
"$PY" -c 'import json, sys; a, b = (json.load(open(f)) for f in sys.argv[1:]); sys.exit(a["images"] != b["images"])' \
    "$WORK/s1.json" "$WORK/s3.json" || fail "eval scored images outside the split"

"$CLIPCAP" caption --manifest "$WORK/man" --store "$WORK/store" --model "$MODEL" --gpt2 "$GPT2" --splits test \
    --out "$WORK/dump" >/dev/null 2>"$WORK/dump.log" || { cat "$WORK/dump.log"; fail "dump"; }

"$PY" - "$WORK/r1.json" "$ann" "$WORK/s1.json" "$WORK/dump" <<'PYEOF'
import glob, json, subprocess, sys
res, ann, scores, dump = sys.argv[1:5]
r = json.load(open(res))
a = json.load(open(ann))
ids = sorted(i["id"] for i in a["images"])
got = [x["image_id"] for x in r]
if not all(isinstance(i, int) for i in got): sys.exit("image ids are not integers: %s" % got)
if sorted(got) != ids or len(set(got)) != len(got): sys.exit("results ids %s, test images %s" % (got, ids))
for x in r:
    if set(x) != {"image_id", "caption"} or not isinstance(x["caption"], str): sys.exit("bad entry %s" % x)
s = json.load(open(scores))
for k in ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "SPICE"):
    if k not in s: sys.exit("score key %s missing" % k)
if s["images"] != len(ids): sys.exit("scored %s images" % s["images"])
d = {}
for f in glob.glob(dump + "/captions-*.zst"):
    out = subprocess.run(["zstd", "-dcq", f], check=True, capture_output=True).stdout.decode().splitlines()
    for l in out[1:]:
        o = json.loads(l)
        d[int(o["key"])] = o["caption"]
if d != {x["image_id"]: x["caption"] for x in r}: sys.exit("eval captions differ from the dump's")
print("eval ok: %d images, CIDEr %.4f" % (len(r), s["CIDEr"]))
PYEOF

expect_error() { # PATTERN args...: fails with a message matching PATTERN, before captioning anything
    local pat=$1
    shift
    set +e
    "$@" >/dev/null 2>"$WORK/err.log"
    local rc=$?
    set -e
    [ "$rc" -ne 0 ] || fail "succeeded: $*"
    grep -q -- "$pat" "$WORK/err.log" || { cat "$WORK/err.log"; fail "message lacks '$pat'"; }
    [ ! -e "$WORK/bad.json" ] || { cat "$WORK/err.log"; fail "captioned everything before the error: $*"; }
}
expect_error "no embedding (not_in_store" "${ev[@]}" --split val --results "$WORK/bad.json"
expect_error "no image of split" "${ev[@]}" --split nosuch --results "$WORK/bad.json"
expect_error "has 4 splits (.*): choose the one to evaluate with --split" "$CLIPCAP" eval --manifest "$WORK/man" \
    --store "$WORK/store" --model "$MODEL" --gpt2 "$GPT2" --annotations "$ann" --results "$WORK/bad.json"
# references of another split: found before captioning, naming an image
"$CLIPCAP" shard --format karpathy --input "$WORK/syn/karpathy/dataset_coco.json" --images-root "$WORK/syn/coco" \
    --gpt2 "$CLIPCAP_FIXTURES/gpt2" --shards 2 --no-image-check --splits test --write-annotations "test:$WORK/t_ann.json" \
    --out "$WORK/man_test" >/dev/null 2>"$WORK/shard_test.log" || { cat "$WORK/shard_test.log"; fail "shard test"; }
"$CLIPCAP" shard --format karpathy --input "$WORK/syn/karpathy/dataset_coco.json" --images-root "$WORK/syn/coco" \
    --gpt2 "$CLIPCAP_FIXTURES/gpt2" --shards 2 --no-image-check --splits restval --write-annotations "restval:$WORK/rv_ann.json" \
    --out "$WORK/man_rv" >/dev/null 2>>"$WORK/shard_test.log" || { cat "$WORK/shard_test.log"; fail "shard restval"; }
expect_error "does not match --annotations .*rv_ann.json: .*image_id [0-9]* is not in the annotations" \
    "${ev[@]}" --annotations "$WORK/rv_ann.json" --results "$WORK/bad.json"
# a manifest of one split: it is the default
"$CLIPCAP" eval --manifest "$WORK/man_test" --store "$WORK/store" --model "$MODEL" --gpt2 "$GPT2" --annotations "$ann" \
    --batch 2 --results "$WORK/r4.json" >"$WORK/s4.json" 2>"$WORK/e4.log" || { cat "$WORK/e4.log"; fail "default split"; }
cmp "$WORK/s1.json" "$WORK/s4.json" || fail "the default split of a one-split manifest is not its split"

# the train split holds the images synth made bad (extract recorded them as
# failures): an error naming the reason, unless --skip-failed leaves them
# out; the results then hold every other train image exactly once
"$CLIPCAP" shard --format karpathy --input "$WORK/syn/karpathy/dataset_coco.json" --images-root "$WORK/syn/coco" \
    --gpt2 "$CLIPCAP_FIXTURES/gpt2" --shards 4 --no-image-check --write-annotations "train:$WORK/train_ann.json" \
    --out "$WORK/man_train" >/dev/null 2>"$WORK/shard_train.log" || { cat "$WORK/shard_train.log"; fail "shard"; }
expect_error "extraction failed (.*); --skip-failed leaves such images out" "${ev[@]}" --split train \
    --annotations "$WORK/train_ann.json" --results "$WORK/bad.json"
"${MPI2[@]}" "${ev[@]}" --split train --skip-failed --annotations "$WORK/train_ann.json" --results "$WORK/rs.json" \
    >"$WORK/ss.json" 2>"$WORK/es.log" || { cat "$WORK/es.log"; fail "eval --skip-failed"; }
"$PY" - "$WORK/rs.json" "$WORK/train_ann.json" "$WORK/es.log" <<'PYEOF'
import json, re, sys
r = json.load(open(sys.argv[1]))
ids = {i["id"] for i in json.load(open(sys.argv[2]))["images"]}
left = {int(k) for k in re.findall(r"image (\d+) \(split train\) left out: extraction failed", open(sys.argv[3]).read())}
got = [x["image_id"] for x in r]
if not left: sys.exit("no image was left out (the test needs bad train images)")
if len(set(got)) != len(got) or set(got) | left != ids or set(got) & left:
    sys.exit("results %s, left out %s, train images %s" % (sorted(got), sorted(left), sorted(ids)))
print("eval --skip-failed ok: %d captioned, %d left out" % (len(got), len(left)))
PYEOF
expect_error "are required" "$CLIPCAP" eval --manifest "$WORK/man" --results "$WORK/bad.json"
[ ! -e "$WORK/bad.json" ] || fail "a failed eval wrote results"
"$CLIPCAP" eval --help | grep -q -- '--annotations'
echo "eval_cli: ok"
