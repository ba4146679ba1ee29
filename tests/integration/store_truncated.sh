#!/usr/bin/env bash
# A data.mdb cut short (8-32 KiB of a longer file): LMDB would map it and
# die of SIGBUS at the first page past the end. Every command that opens
# the store gives one error naming the file instead; `store stats` still
# reports the other environment and lists the damaged one; extract refuses
# to write into its own.
source "$(dirname "$0")/extract_lib.bash"
make_manifest "$WORK" 24
"$CLIPCAP" extract --manifest "$WORK/man" --clip "$CLIP_TINY" --store "$WORK/store" >/dev/null \
    2>"$WORK/extract.log" || { cat "$WORK/extract.log"; fail "extract"; }
# a second environment with the same entries (as another run's would be)
cp -r "$WORK/store/rank-00000-of-00001" "$WORK/store/rank-00000-of-00002"
env0="$WORK/store/rank-00000-of-00001/data.mdb"
[ "$(stat -c %s "$env0")" -gt 32768 ] || fail "the test needs a data.mdb over 32 KiB"
cp "$env0" "$WORK/data.mdb.orig"
"$CLIPCAP" store stats --store "$WORK/store" >"$WORK/full.json"
keys1=$("$PY" -c 'import json,sys; e=json.load(open(sys.argv[1]))["environments"][1]; print(e["embeddings"] + e["failures"])' \
    "$WORK/full.json")

# expect_damaged CMD...: exits 1 (not a signal) naming the damaged file
expect_damaged() {
    set +e
    "$@" >"$WORK/out" 2>"$WORK/err"
    local rc=$?
    set -e
    [ "$rc" = 1 ] || { cat "$WORK/err"; fail "exit status $rc (1 expected): $*"; }
    grep -q "rank-00000-of-00001/data.mdb: .*truncated" "$WORK/err" || { cat "$WORK/err"; fail "no error naming the file: $*"; }
    [ "$(grep -c error "$WORK/err")" = 1 ] || { cat "$WORK/err"; fail "not one error line: $*"; }
}
for size in 8192 16384 24576 32768; do
    cp "$WORK/data.mdb.orig" "$env0"
    truncate -s "$size" "$env0"
    expect_damaged "$CLIPCAP" store stats --store "$WORK/store"
    "$PY" - "$WORK/out" "$keys1" <<'PYEOF' || fail "stats of the readable environment (size $size)"
import json, sys
s = json.load(open(sys.argv[1]))
assert [e["name"] for e in s["environments"]] == ["rank-00000-of-00002"], s["environments"]
assert s["keys"] == int(sys.argv[2]), (s["keys"], sys.argv[2])
assert len(s["damaged_environments"]) == 1 and "rank-00000-of-00001/data.mdb" in s["damaged_environments"][0]
PYEOF
    expect_damaged "$CLIPCAP" store dump --store "$WORK/store" --out "$WORK/dump.jsonl"
done
# extract's own environment (rank 0 of 1) is the damaged one: refused
# before LMDB opens it
expect_damaged "$CLIPCAP" extract --manifest "$WORK/man" --clip "$CLIP_TINY" --store "$WORK/store"
caption_gpt2_dir "$WORK/gpt2"
expect_damaged "$CLIPCAP" caption --store "$WORK/store" --model "$CLIPCAP_FIXTURES/caption/mlp_tuned.safetensors" \
    --gpt2 "$WORK/gpt2"
# not LMDB at all
"$PY" -c 'print("not an lmdb file" * 512)' >"$env0"
set +e; "$CLIPCAP" store stats --store "$WORK/store" >/dev/null 2>"$WORK/err"; rc=$?; set -e
[ "$rc" = 1 ] && grep -q "data.mdb: meta page 0 is not an LMDB meta page" "$WORK/err" || { cat "$WORK/err"; fail "garbage data.mdb"; }
# intact again: readable, nothing lost in the other environment
cp "$WORK/data.mdb.orig" "$env0"
"$CLIPCAP" store stats --store "$WORK/store" >"$WORK/again.json" || fail "stats of the restored store"
cmp "$WORK/full.json" "$WORK/again.json" || fail "stats changed after the damaged runs"
echo "store_truncated: ok"
