# Shared by the extract_*.sh, store_*.sh and caption_*.sh integration tests
# (sourced, not a test itself): a small synthetic COCO manifest and its
# feature store, the tiny CLIP and captioning fixtures, and JSON/dump
# comparisons in Python's standard library (no numpy, no torch).
set -euo pipefail
: "${CLIPCAP:?set by ctest}" "${CLIPCAP_FIXTURES:?set by ctest}"
CLIP_TINY="$CLIPCAP_FIXTURES/clip/tiny"
PY=/usr/bin/python3
MPI2=(mpirun --oversubscribe -np 2)
mkdir -p "${CLIPCAP_TMP:-/tmp}"
WORK=$(mktemp -d "${CLIPCAP_TMP:-/tmp}/$(basename "$0" .sh).XXXXXX")
trap 'rm -rf "$WORK"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

# make_manifest DIR COUNT [synth options...]: DIR/syn (images) and DIR/man
# (5 shards; images not checked by shard, so extract meets the bad ones).
make_manifest() {
    local dir=$1 count=$2
    shift 2
    "$CLIPCAP" synth --out "$dir/syn" --count "$count" --layouts coco "$@" >/dev/null 2>"$dir/synth.log"
    "$CLIPCAP" shard --format coco --input "$dir/syn/coco/annotations/captions_train2014.json" \
        --input "$dir/syn/coco/annotations/captions_val2014.json" --images-root "$dir/syn/coco" \
        --gpt2 "$CLIPCAP_FIXTURES/gpt2" --shards 5 --no-image-check --out "$dir/man" >/dev/null 2>"$dir/shard.log"
}

# make_store DIR COUNT: make_manifest DIR COUNT, then DIR/store (extract
# with the tiny CLIP, default options).
make_store() {
    make_manifest "$1" "$2"
    "$CLIPCAP" extract --manifest "$1/man" --clip "$CLIP_TINY" --store "$1/store" >/dev/null 2>"$1/extract.log"
}

# caption_gpt2_dir DIR: DIR becomes a GPT-2 hub directory of the captioning
# fixtures' model with the real tokenizer files (its vocabulary is the
# first 64 ids of the real one).
caption_gpt2_dir() {
    mkdir -p "$1"
    ln -s "$CLIPCAP_FIXTURES/caption/gpt2/config.json" "$CLIPCAP_FIXTURES/caption/gpt2/model.safetensors" "$1/"
    ln -s "$CLIPCAP_FIXTURES/gpt2/vocab.json" "$CLIPCAP_FIXTURES/gpt2/merges.txt" "$1/"
}

# jget FILE KEY[.KEY...]: a value of a JSON file (objects only).
jget() {
    "$PY" -c 'import json,sys
v=json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): v=v.get(k, 0) if isinstance(v, dict) else 0
print(json.dumps(v) if isinstance(v,(dict,list)) else v)' "$1" "$2"
}

# same_dump A B TOL: two JSONL dumps hold the same keys in the same order
# with equal metadata, and embeddings within |a-b| <= TOL*(1+|a|).
same_dump() {
    "$PY" - "$1" "$2" "$3" <<'PYEOF'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
tol = float(sys.argv[3])
if [x["key"] for x in a] != [x["key"] for x in b]:
    sys.exit("keys differ: %d vs %d lines" % (len(a), len(b)))
worst = 0.0
for x, y in zip(a, b):
    ex, ey = x.pop("embedding"), y.pop("embedding")
    if x != y: sys.exit("metadata differs for key %s: %s vs %s" % (x["key"], x, y))
    if len(ex) != len(ey): sys.exit("dim differs for key %s" % x["key"])
    for u, v in zip(ex, ey):
        d = abs(u - v) / (1 + abs(u))
        worst = max(worst, d)
        if d > tol: sys.exit("key %s: %r vs %r beyond tolerance %g" % (x["key"], u, v, tol))
print("max relative difference %.3g over %d keys" % (worst, len(a)))
PYEOF
}
