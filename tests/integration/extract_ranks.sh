#!/usr/bin/env bash
# extract: one rank and `mpirun -np 2` give the same store; bad samples are
# recorded with their reason (checked against synth's own list of what it
# broke), never dropped; embeddings match `clipcap embed` image by image;
# the npy dump holds the JSONL dump's numbers.
#
# Byte-identical at the default batch: record i of a shard is always row
# i % B of a B-row forward pass (extract_pipeline.c, fixed batch slots), so
# an embedding does not depend on how shards are spread over ranks nor on
# which batch-mates failed. Both runs use the same encoder thread count
# (ops_cpu_gemm's split of a GEMM depends on it). A --batch 1 run gives
# other GEMM shapes: equal to the default batch within 1e-5 relative
# (OpenBLAS rounds by shape; measured up to 5e-7), and byte-identical to
# `clipcap embed --batch 1`.
source "$(dirname "$0")/extract_lib.bash"
make_manifest "$WORK" 40 --bad --large 0
run() { "$CLIPCAP" extract --manifest "$WORK/man" --clip "$CLIP_TINY" "$@" >/dev/null 2>>"$WORK/extract.log"; }

run --store "$WORK/s1" --threads 1
"${MPI2[@]}" "$CLIPCAP" extract --manifest "$WORK/man" --clip "$CLIP_TINY" --store "$WORK/s2" --threads 1 \
    >/dev/null 2>>"$WORK/extract.log"
run --store "$WORK/s3" --batch 1
[ "$(jget "$WORK/s2/extract-summary.json" consolidation.published)" = True ] || fail "the 2-rank run published no pack"
! ls -d "$WORK"/s2/rank-* 2>/dev/null || fail "environments left after consolidation"
for s in s1 s2 s3; do
    "$CLIPCAP" store dump --store "$WORK/$s" --format jsonl --out "$WORK/$s.jsonl" 2>/dev/null
done
cmp "$WORK/s1.jsonl" "$WORK/s2.jsonl" || fail "1 rank and 2 ranks (default batch) dump differently"
same_dump "$WORK/s1.jsonl" "$WORK/s3.jsonl" 1e-5 || fail "--batch 1 and the default batch differ"

# Counts: every manifest image is encoded or failed, in both runs.
images=$(jget "$WORK/man/index.json" images)
for s in s1 s2; do
    sum="$WORK/$s/extract-summary.json"
    [ "$(jget "$sum" images)" = "$images" ] || fail "$s: summary saw $(jget "$sum" images) of $images images"
    [ $(( $(jget "$sum" encoded) + $(jget "$sum" failed) )) = "$images" ] || fail "$s: encoded + failed != images"
done
[ "$(jget "$WORK/s2/extract-summary.json" ranks)" = 2 ] || fail "merged summary does not say 2 ranks"
"$CLIPCAP" store stats --store "$WORK/s2" >"$WORK/stats.json"
[ "$(jget "$WORK/stats.json" embeddings)" = "$(wc -l <"$WORK/s1.jsonl")" ] || fail "stats and dump disagree"

# Every image synth broke on purpose is a failure with the right reason.
"$PY" - "$WORK/syn/synth_bad.json" "$WORK/s2/extract-summary.json" <<'PYEOF'
import json, sys
bad = json.load(open(sys.argv[1]))["records"]
summary = json.load(open(sys.argv[2]))
got = {f["key"]: f["reason"] for f in summary["failures"]}
want = {"missing_image": "missing", "truncated_image": "corrupt", "zero_length": "corrupt"}
n = 0
for r in bad:
    if r["layout"] != "coco" or r["kind"] not in want: continue
    key = str(r["id"])
    if got.get(key) != want[r["kind"]]:
        sys.exit("%s (key %s): expected failure '%s', got %r" % (r["kind"], key, want[r["kind"]], got.get(key)))
    n += 1
if n < 3: sys.exit("synth_bad.json lists only %d image failures" % n)
if sum(summary["failures_by_reason"].values()) != summary["failed"]: sys.exit("failures_by_reason does not add up")
print("bad samples: %d checked" % n)
PYEOF

# The store's embeddings are `clipcap embed`'s for the same files (batch 1 both).
for key in 2 5 11; do
    f=$(ls "$WORK"/syn/coco/*/COCO_*_$(printf '%012d' "$key").* | head -1)
    "$CLIPCAP" embed --clip "$CLIP_TINY" --batch 1 "$f" 2>/dev/null \
        | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["embedding"])' >"$WORK/embed.txt"
    grep "^{\"key\": \"$key\"," "$WORK/s3.jsonl" \
        | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["embedding"])' >"$WORK/store.txt"
    cmp -s "$WORK/embed.txt" "$WORK/store.txt" || fail "key $key: store embedding differs from clipcap embed of $f"
done

# npy dump: an [N, D] float32 matrix with the JSONL dump's values and keys.
"$CLIPCAP" store dump --store "$WORK/s2" --format npy --out "$WORK/e.npy" 2>/dev/null
"$PY" - "$WORK/e.npy" "$WORK/e.keys.txt" "$WORK/s1.jsonl" <<'PYEOF'
import ast, json, struct, sys
raw = open(sys.argv[1], "rb").read()
assert raw[:6] == b"\x93NUMPY", "not an npy file"
hlen = struct.unpack("<H", raw[8:10])[0]
hdr = ast.literal_eval(raw[10:10 + hlen].decode())
assert hdr["descr"] == "<f4" and not hdr["fortran_order"], hdr
n, d = hdr["shape"]
vals = struct.unpack("<%df" % (n * d), raw[10 + hlen:])
keys = open(sys.argv[2]).read().split("\n")[:-1]
rows = [json.loads(l) for l in open(sys.argv[3])]
assert keys == [r["key"] for r in rows], "keys file differs from the JSONL order"
for i, r in enumerate(rows):
    want = [struct.unpack("<f", struct.pack("<f", v))[0] for v in r["embedding"]]
    assert list(vals[i * d:(i + 1) * d]) == want, "row %d (%s) differs" % (i, r["key"])
print("npy: %d x %d" % (n, d))
PYEOF
echo "extract_ranks: ok"
