#!/usr/bin/env bash
# `clipcap store` and `clipcap extract` on bad input: one clear error line
# naming what is wrong, a non-zero status, never a crash; --help works.
source "$(dirname "$0")/extract_lib.bash"
expect_error() { # expect_error PATTERN command...
    local pat=$1
    shift
    if "$@" >"$WORK/out" 2>"$WORK/err"; then fail "succeeded: $*"; fi
    grep -q -- "$pat" "$WORK/err" || fail "error of '$*' does not mention '$pat': $(cat "$WORK/err")"
}
"$CLIPCAP" store --help | grep -q 'store stats --store DIR' || fail "store --help"
"$CLIPCAP" extract --help | grep -q -- '--dtype' || fail "extract --help"
expect_error "$WORK/none" "$CLIPCAP" store stats --store "$WORK/none"
mkdir -p "$WORK/empty/rank-x-of-y"
expect_error "no feature store" "$CLIPCAP" store stats --store "$WORK/empty"
expect_error "stats, dump or consolidate" "$CLIPCAP" store list --store "$WORK/empty"
expect_error "needs --out" "$CLIPCAP" store dump --store "$WORK/empty"
expect_error "dtype 'fp8'" "$CLIPCAP" extract --manifest m --clip c --store s --dtype fp8
expect_error "--batch" "$CLIPCAP" extract --manifest m --clip c --store s --batch 0
expect_error "required" "$CLIPCAP" extract --manifest m --store s
expect_error "$WORK/nomanifest" "$CLIPCAP" extract --manifest "$WORK/nomanifest" --clip "$CLIP_TINY" --store "$WORK/s"

# A store whose environment is damaged: the error names the environment.
make_manifest "$WORK" 16 --large 0
"$CLIPCAP" extract --manifest "$WORK/man" --clip "$CLIP_TINY" --store "$WORK/s" >/dev/null 2>&1
"$CLIPCAP" store dump --store "$WORK/s" --format npy --out "$WORK/x.npy" 2>/dev/null
# --max-pixels turns big images into too_large failures, not a stop.
"$CLIPCAP" extract --manifest "$WORK/man" --clip "$CLIP_TINY" --store "$WORK/small" --max-pixels 4096 \
    >"$WORK/sum.json" 2>/dev/null || fail "extract --max-pixels failed"
[ "$(jget "$WORK/sum.json" failures_by_reason.too_large)" -gt 0 ] || fail "no too_large failures with --max-pixels 4096"
[ $(( $(jget "$WORK/sum.json" encoded) + $(jget "$WORK/sum.json" failed) )) = "$(jget "$WORK/sum.json" images)" ] \
    || fail "--max-pixels: encoded + failed != images"
expect_error "format 'csv'" "$CLIPCAP" store dump --store "$WORK/s" --format csv --out "$WORK/x"
cp -r "$WORK/s" "$WORK/s_trunc"
printf 'not a pack header' >"$WORK/s/packs/gen-000000000001/header.bin"
expect_error "gen-000000000001/header.bin" "$CLIPCAP" store stats --store "$WORK/s"
truncate -s 100 "$WORK/s_trunc/packs/gen-000000000001/data.bin"
expect_error "truncated" "$CLIPCAP" store stats --store "$WORK/s_trunc"
# A writer environment that no pack holds (a version 1 store, or an extract
# killed before its consolidation) in a store without a pack.
mkdir -p "$WORK/v1/rank-00000-of-00001"
printf 'an lmdb environment' >"$WORK/v1/rank-00000-of-00001/data.mdb"
expect_error "clipcap store consolidate" "$CLIPCAP" store stats --store "$WORK/v1"
expect_error "rank-00000-of-00001" "$CLIPCAP" store consolidate --store "$WORK/v1"
echo "store_cli: ok"
