#!/usr/bin/env bash
# Nightly runs read only what changed: under `mpirun -np 2`, a re-run on an
# unchanged corpus opens no image file (counted with strace -f over every
# rank's open/openat), in the COCO (one file per image) and the webdataset
# tar layouts, and publishes no new pack. An image whose mtime changed but
# not its bytes is opened once, hashed, not re-encoded, and its new stat()
# recorded so that the next run opens nothing again. A change that keeps
# size and mtime (restored with touch -r) is invisible without --rehash and
# re-encoded with it. Before the stat() check every re-run opened and
# hashed every image.
source "$(dirname "$0")/extract_lib.bash"
make_manifest "$WORK" 24 --large 0
"$CLIPCAP" synth --out "$WORK/tsyn" --count 24 --layouts cc-tar --per-shard 10 --large 0 >/dev/null 2>>"$WORK/synth.log"
"$CLIPCAP" shard --format cc-tar --images-root "$WORK/tsyn/cc/wds" --gpt2 "$CLIPCAP_FIXTURES/gpt2" --shards 3 \
    --out "$WORK/tman" >/dev/null 2>>"$WORK/shard.log"

# ex MANIFEST STORE PATTERN [options...]: extract on 2 ranks under strace;
# $WORK/sum.json is its summary, $opened the number of successful opens of
# paths matching PATTERN (the images, or the tars).
ex() {
    local man=$1 store=$2 pat=$3
    shift 3
    strace -f -qq -e trace=open,openat -o "$WORK/trace" "${MPI2[@]}" "$CLIPCAP" extract --manifest "$man" \
        --clip "$CLIP_TINY" --store "$store" --threads 1 "$@" >"$WORK/sum.json" 2>>"$WORK/extract.log" \
        || fail "extract $*: $(tail -3 "$WORK/extract.log")"
    opened=$(grep -E "$pat" "$WORK/trace" | grep -vc ' = -1 ' || true)
}
expect() { # expect FIELD VALUE WHAT
    [ "$(jget "$WORK/sum.json" "$1")" = "$2" ] || fail "$3: $1 is $(jget "$WORK/sum.json" "$1"), expected $2"
}
S="$WORK/store"
IMG='/syn/coco/(train|val)2014/'

ex "$WORK/man" "$S" "$IMG"
n=$(jget "$WORK/sum.json" encoded)
[ "$n" -ge 24 ] && [ "$opened" = "$n" ] || fail "first run: encoded $n, opened $opened image files"

ex "$WORK/man" "$S" "$IMG"
[ "$opened" = 0 ] || fail "unchanged re-run opened $opened image files"
expect skipped_unread "$n" "unchanged re-run"
expect encoded 0 "unchanged re-run"
expect consolidation.published False "unchanged re-run"

img=$(ls "$WORK"/syn/coco/*/COCO_*_000000000007.*)
touch -m -d '2001-02-03 04:05:06.789' "$img"
ex "$WORK/man" "$S" "$IMG"
[ "$opened" = 1 ] || fail "after touching one image: $opened image files opened"
expect encoded 0 "touched image"
expect source_metadata_updated 1 "touched image"
ex "$WORK/man" "$S" "$IMG"
[ "$opened" = 0 ] || fail "after recording the touched image's stat(): $opened image files opened"

"$CLIPCAP" store dump --store "$S" --out "$WORK/d1.jsonl" 2>/dev/null
cp -p "$img" "$WORK/ref"
size=$(stat -c %s "$img")
printf '\x55' | dd of="$img" bs=1 seek=$((size - 3)) conv=notrunc status=none
touch -r "$WORK/ref" "$img"
ex "$WORK/man" "$S" "$IMG"
expect encoded 0 "same size and mtime without --rehash"
ex "$WORK/man" "$S" "$IMG" --rehash
[ "$opened" = "$n" ] || fail "--rehash opened $opened of $n image files"
expect encoded 1 "same size and mtime with --rehash"
"$CLIPCAP" store dump --store "$S" --out "$WORK/d2.jsonl" 2>/dev/null
cmp -s "$WORK/d1.jsonl" "$WORK/d2.jsonl" && fail "--rehash did not change the rewritten image's entry"

# Tar layout: the tar's stat() and the member's offset stand for the image.
TAR='/tsyn/cc/wds/[0-9]+\.tar'
ex "$WORK/tman" "$WORK/tstore" "$TAR"
tn=$(jget "$WORK/sum.json" encoded)
[ "$tn" -ge 24 ] && [ "$opened" -gt 0 ] || fail "tar layout, first run: encoded $tn, opened $opened"
ex "$WORK/tman" "$WORK/tstore" "$TAR"
[ "$opened" = 0 ] || fail "tar layout, unchanged re-run: $opened tar opens"
expect skipped_unread "$tn" "tar layout, unchanged re-run"
touch "$WORK/tsyn/cc/wds/00000.tar"
ex "$WORK/tman" "$WORK/tstore" "$TAR"
expect encoded 0 "tar layout, touched tar"
expect source_metadata_updated 10 "tar layout, touched tar (10 members)"
echo "extract_unchanged: ok"
