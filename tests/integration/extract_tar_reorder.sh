#!/usr/bin/env bash
# A webdataset tar rewritten after `clipcap shard` with two same-size image
# members swapped: every offset is unchanged, so the manifest's offset of
# key A now holds B's bytes. Extract used to store each embedding under the
# other's key; it must check the member header in front of the bytes and
# record both as tar_mismatch failures (naming the tar and both members),
# and encode the others.
source "$(dirname "$0")/extract_lib.bash"
export OMP_NUM_THREADS=1
"$CLIPCAP" synth --out "$WORK/syn" --count 16 --layouts cc-tsv,cc-tar --large 0 >/dev/null 2>"$WORK/synth.log"
tar="$WORK/syn/cc/wds/00000.tar"
# rewrite_tar TAR MODE: MODE "pad" makes the first two JPEG members the
# same size (zeros after the JPEG's end, which decoders ignore) keeping the
# order; MODE "swap" swaps those two members in place. Prints their keys.
rewrite_tar() {
    "$PY" - "$1" "$2" <<'PYEOF'
import io, sys, tarfile
path, mode = sys.argv[1:]
with tarfile.open(path) as t:
    members = [(m, t.extractfile(m).read() if m.isfile() else None) for m in t.getmembers()]
jpgs = [i for i, (m, _) in enumerate(members) if m.name.endswith(".jpg")][:2]
assert len(jpgs) == 2, "need two JPEG members"
a, b = jpgs
if mode == "pad":
    n = max(len(members[a][1]), len(members[b][1]))
    for i in jpgs:
        m, d = members[i]
        members[i] = (m, d + b"\0" * (n - len(d)))
        m.size = n
else:
    assert members[a][0].size == members[b][0].size
    members[a], members[b] = members[b], members[a]
with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as t:
    for m, d in members:
        t.addfile(m, io.BytesIO(d) if d is not None else None)
print(" ".join(members[i][0].name.rsplit("/", 1)[-1].split(".")[0] for i in jpgs))
PYEOF
}
rewrite_tar "$tar" pad >/dev/null
"$CLIPCAP" shard --format cc-tar --input "$WORK/syn/cc/Train_GCC-training.tsv" --images-root "$WORK/syn/cc/wds" \
    --gpt2 "$CLIPCAP_FIXTURES/gpt2" --shards 2 --no-image-check --out "$WORK/man" >/dev/null 2>"$WORK/shard.log" \
    || { cat "$WORK/shard.log"; fail "shard"; }
keys=$(rewrite_tar "$tar" swap)
"$CLIPCAP" extract --manifest "$WORK/man" --clip "$CLIP_TINY" --store "$WORK/store" >"$WORK/sum.json" \
    2>"$WORK/extract.log" || { cat "$WORK/extract.log"; fail "extract"; }
"$PY" - "$WORK/sum.json" $keys <<'PYEOF' || { cat "$WORK/extract.log"; fail "the swapped members were not refused"; }
import json, sys
s = json.load(open(sys.argv[1]))
a, b = sys.argv[2:4]
f = {x["key"]: x for x in s["failures"]}
assert set(f) == {a, b}, s["failures"]
for k, other in ((a, b), (b, a)):
    assert f[k]["reason"] == "tar_mismatch", f[k]
    assert "00000.tar" in f[k]["message"] and "'%s.jpg'" % other in f[k]["message"] and "not key " + k in f[k]["message"], f[k]
assert s["encoded"] == s["images"] - 2, s
PYEOF
echo "extract_tar_reorder: ok"
