# Shared by caption_dump_resume.sh, caption_dump_mpi.sh and eval_cli.sh
# (sourced, not a test itself): a small synthetic Karpathy manifest whose
# feature store lacks the val split (extract ran on the other splits) and
# holds extract failures for the bad images, the tiny captioning fixture
# model, and checks of a dump written in Python's standard library + the
# zstd CLI (no numpy, no torch).
set -euo pipefail
: "${CLIPCAP:?set by ctest}" "${CLIPCAP_FIXTURES:?set by ctest}"
PY=/usr/bin/python3
MPI2=(mpirun --oversubscribe -np 2)
export OMP_NUM_THREADS=1
mkdir -p "${CLIPCAP_TMP:-/tmp}"
WORK=$(mktemp -d --tmpdir="${CLIPCAP_TMP:-/tmp}")
trap 'rm -rf "$WORK"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

# tests/fixtures/caption: an MLP + tuned GPT-2 checkpoint (CLIP dim 16, the
# tiny CLIP's) and a Transformer one; their GPT-2 has the first 64 ids of the
# real vocabulary, so the real tokenizer files decode its tokens.
MODEL="$CLIPCAP_FIXTURES/caption/mlp_tuned.safetensors"
MODEL_TF="$CLIPCAP_FIXTURES/caption/tf_frozen.safetensors"
GPT2="$WORK/gpt2"
mkdir -p "$GPT2"
for f in "$CLIPCAP_FIXTURES/caption/gpt2/config.json" "$CLIPCAP_FIXTURES/caption/gpt2/model.safetensors" \
    "$CLIPCAP_FIXTURES/gpt2/vocab.json" "$CLIPCAP_FIXTURES/gpt2/merges.txt"; do
    ln -s "$f" "$GPT2/"
done

# make_data COUNT: $WORK/man (4 shards, every split, bad images kept),
# $WORK/store (embeddings of train/restval/test: val is absent, the bad
# images are failures), $WORK/test_ann.json (the test split's references).
make_data() {
    local d=$WORK
    "$CLIPCAP" synth --out "$d/syn" --count "$1" --layouts coco,karpathy --bad >/dev/null 2>"$d/synth.log"
    local shard=("$CLIPCAP" shard --format karpathy --input "$d/syn/karpathy/dataset_coco.json"
        --images-root "$d/syn/coco" --gpt2 "$CLIPCAP_FIXTURES/gpt2" --shards 4 --no-image-check)
    "${shard[@]}" --write-annotations "test:$d/test_ann.json" --out "$d/man" >/dev/null 2>"$d/shard.log"
    "${shard[@]}" --splits train,restval,test --out "$d/man_ext" >/dev/null 2>>"$d/shard.log"
    "$CLIPCAP" extract --manifest "$d/man_ext" --clip "$CLIPCAP_FIXTURES/clip/tiny" --store "$d/store" \
        >/dev/null 2>"$d/extract.log"
}

# check_dump OUT MANIFEST: the dump is complete and consistent:
#  - index.json lists every manifest shard with the counts of its files;
#  - each captions shard holds its header then, in manifest order, the keys
#    of the same manifest shard; with the failures file, every manifest key
#    appears exactly once (no duplicate, no gap);
#  - a failure is exactly an image the store has no embedding for (val:
#    not_in_store; the bad images: extract's reason);
#  - every caption line has key, caption, tokens, logprob and the index's
#    fingerprint; no partial/ is left.
check_dump() {
    "$PY" - "$1" "$2" <<'PYEOF'
import json, os, subprocess, sys
out, man = sys.argv[1], sys.argv[2]
def lines(path):
    data = subprocess.run(["zstd", "-dcq", path], check=True, capture_output=True).stdout
    return [json.loads(l) for l in data.decode().splitlines()]
idx = json.load(open(os.path.join(out, "index.json")))
mi = json.load(open(os.path.join(man, "index.json")))
shards = mi["shards"]
if len(idx["shards"]) != len(shards): sys.exit("index lists %d shards, manifest %d" % (len(idx["shards"]), len(shards)))
if os.path.exists(os.path.join(out, "partial")): sys.exit("partial/ left behind")
seen = {}
tc = tf = 0
for s, (o, m) in enumerate(zip(idx["shards"], shards)):
    mk = [r["key"] for r in lines(os.path.join(man, m["file"]))[1:]]
    caps = lines(os.path.join(out, o["file"]))
    fails = lines(os.path.join(out, o["failures_file"]))
    head, caps = caps[0], caps[1:]
    if head["shard"] != s or head["captions"] != len(caps) or head["failures"] != len(fails):
        sys.exit("shard %d: header %s vs %d captions, %d failures" % (s, head, len(caps), len(fails)))
    if o["captions"] != len(caps) or o["failures"] != len(fails): sys.exit("shard %d: index counts differ" % s)
    got = [r["key"] for r in caps]
    if got != [k for k in mk if k in set(got)]: sys.exit("shard %d: captions not in manifest order" % s)
    for r in caps + fails:
        if r["key"] in seen: sys.exit("key %s twice (shards %d and %d)" % (r["key"], seen[r["key"]], s))
        seen[r["key"]] = s
    missing = set(mk) - set(got) - set(r["key"] for r in fails)
    if missing: sys.exit("shard %d: keys in no file: %s" % (s, sorted(missing)))
    for r in caps:
        if set(r) < {"key", "split", "caption", "tokens", "logprob", "fingerprint"} or r["fingerprint"] != idx["fingerprint"]:
            sys.exit("bad caption line %s" % r)
        if r["split"] == "val": sys.exit("val image %s captioned without an embedding" % r["key"])
    for r in fails:
        want = "not_in_store" if r["split"] == "val" else None
        if (want and r["failure"] != want) or (not want and r["failure"] == "not_in_store"):
            sys.exit("failure line %s" % r)
    tc += len(caps); tf += len(fails)
if idx["captions"] != tc or idx["failures"] != tf: sys.exit("index totals differ")
if tf == 0 or tc == 0: sys.exit("expected both captions and failures (%d, %d)" % (tc, tf))
print("dump ok: %d captions, %d failures, %d keys once each" % (tc, tf, len(seen)))
PYEOF
}

# same_dump A B: the decoded, sorted lines of every captions and failures
# file are equal (and file by file, and index.json too).
same_dump() {
    "$PY" - "$1" "$2" <<'PYEOF'
import glob, json, os, subprocess, sys
a, b = sys.argv[1], sys.argv[2]
def lines(path):
    return subprocess.run(["zstd", "-dcq", path], check=True, capture_output=True).stdout.decode().splitlines()
fa = sorted(os.path.basename(p) for p in glob.glob(os.path.join(a, "*.zst")))
fb = sorted(os.path.basename(p) for p in glob.glob(os.path.join(b, "*.zst")))
if fa != fb: sys.exit("files differ: %s vs %s" % (fa, fb))
ua, ub = [], []
for f in fa:
    la, lb = lines(os.path.join(a, f)), lines(os.path.join(b, f))
    if la != lb: sys.exit("%s differs: %d vs %d lines" % (f, len(la), len(lb)))
    ua += la[1:] if f.startswith("captions-") else la
    ub += lb[1:] if f.startswith("captions-") else lb
if sorted(ua) != sorted(ub): sys.exit("sorted union differs")
if json.load(open(os.path.join(a, "index.json"))) != json.load(open(os.path.join(b, "index.json"))):
    sys.exit("index.json differs")
print("same dump: %d lines in %d files" % (len(ua), len(fa)))
PYEOF
}
