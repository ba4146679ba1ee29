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
expect_error "no feature store environments" "$CLIPCAP" store stats --store "$WORK/empty"
expect_error "stats or dump" "$CLIPCAP" store list --store "$WORK/empty"
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
printf 'not an lmdb file' >"$WORK/s/rank-00000-of-00001/data.mdb"
expect_error "rank-00000-of-00001" "$CLIPCAP" store stats --store "$WORK/s"
echo "store_cli: ok"
