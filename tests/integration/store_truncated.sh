#!/usr/bin/env bash
# A writer environment whose data.mdb is cut short (8-32 KiB of a longer
# file): LMDB would map it and die of SIGBUS at the first page past the end.
# Only writers open environments: consolidation (`store consolidate`, and
# extract, which consolidates first) gives one error naming the file and
# exits 1; readers (`store stats|dump`, caption) keep reading the current
# pack, which lacks nothing it had. The environment is left by a run killed
# (strace fault injection) at its final consolidation's first rename (its
# second: the first writes extract-settings.json).
source "$(dirname "$0")/extract_lib.bash"
make_manifest "$WORK" 24
"$CLIPCAP" extract --manifest "$WORK/man" --clip "$CLIP_TINY" --store "$WORK/store" >/dev/null \
    2>"$WORK/extract.log" || { cat "$WORK/extract.log"; fail "extract"; }
"$CLIPCAP" store dump --store "$WORK/store" --out "$WORK/pack.jsonl" 2>/dev/null
if strace -qq -o /dev/null -e trace=rename -e inject=rename:signal=KILL:when=2 "$CLIPCAP" extract \
    --manifest "$WORK/man" --clip "$CLIPCAP_FIXTURES/clip/tiny_gelu" --store "$WORK/store" >/dev/null 2>&1; then
    fail "the injected kill did not stop extract"
fi
env0="$WORK/store/rank-00000-of-00001/data.mdb"
[ "$(stat -c %s "$env0")" -gt 32768 ] || fail "the test needs a data.mdb over 32 KiB"
cp "$env0" "$WORK/data.mdb.orig"

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
caption_gpt2_dir "$WORK/gpt2"
for size in 8192 16384 24576 32768; do
    cp "$WORK/data.mdb.orig" "$env0"
    truncate -s "$size" "$env0"
    expect_damaged "$CLIPCAP" store consolidate --store "$WORK/store"
    expect_damaged "$CLIPCAP" extract --manifest "$WORK/man" --clip "$CLIP_TINY" --store "$WORK/store"
    "$CLIPCAP" store stats --store "$WORK/store" >"$WORK/stats.json" 2>/dev/null || fail "stats (size $size)"
    [ "$(jget "$WORK/stats.json" pending_environments)" = 1 ] || fail "stats does not report the environment"
    "$CLIPCAP" store dump --store "$WORK/store" --out "$WORK/dump.jsonl" 2>/dev/null || fail "dump (size $size)"
    cmp -s "$WORK/pack.jsonl" "$WORK/dump.jsonl" || fail "the pack changed (size $size)"
    "$CLIPCAP" caption --store "$WORK/store" --model "$CLIPCAP_FIXTURES/caption/mlp_tuned.safetensors" \
        --gpt2 "$WORK/gpt2" >/dev/null 2>"$WORK/err" || { cat "$WORK/err"; fail "caption (size $size)"; }
done
# not LMDB at all
"$PY" -c 'print("not an lmdb file" * 512)' >"$env0"
set +e; "$CLIPCAP" store consolidate --store "$WORK/store" >/dev/null 2>"$WORK/err"; rc=$?; set -e
[ "$rc" = 1 ] && grep -q "data.mdb: meta page 0 is not an LMDB meta page" "$WORK/err" || { cat "$WORK/err"; fail "garbage data.mdb"; }
# intact again: consolidated, nothing lost
cp "$WORK/data.mdb.orig" "$env0"
"$CLIPCAP" store consolidate --store "$WORK/store" >"$WORK/cons.json" 2>/dev/null || fail "consolidate the restored environment"
[ "$(jget "$WORK/cons.json" published)" = True ] || fail "the restored environment was not merged"
"$CLIPCAP" store stats --store "$WORK/store" >"$WORK/stats.json" || fail "stats of the restored store"
[ "$(jget "$WORK/stats.json" pending_environments)" = 0 ] && [ "$(jget "$WORK/stats.json" encoded_total)" -gt "$(wc -l <"$WORK/pack.jsonl")" ] \
    || fail "after consolidation: $(cat "$WORK/stats.json")"
echo "store_truncated: ok"
