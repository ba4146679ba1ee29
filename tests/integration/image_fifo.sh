#!/usr/bin/env bash
# A FIFO where an image should be (a manifest record, a directory entry
# named x.jpg) used to hang open() forever. Every image-reading path refuses
# it as "not a regular file": extract records it as a read_error failure and
# encodes the rest; caption --images, embed and preprocess report it and
# go on or stop with exit 1. Each command runs under a timeout.
source "$(dirname "$0")/extract_lib.bash"
export OMP_NUM_THREADS=1
T=(timeout 30)
make_manifest "$WORK" 8
victim=$(ls "$WORK/syn/coco/train2014" | head -1)
rm "$WORK/syn/coco/train2014/$victim"
mkfifo "$WORK/syn/coco/train2014/$victim"

set +e
"${T[@]}" "$CLIPCAP" extract --manifest "$WORK/man" --clip "$CLIP_TINY" --store "$WORK/store" >"$WORK/sum.json" \
    2>"$WORK/extract.log"
rc=$?
set -e
[ "$rc" != 124 ] || fail "extract hung on the FIFO"
[ "$rc" = 0 ] || { cat "$WORK/extract.log"; fail "extract exit status $rc"; }
"$PY" - "$WORK/sum.json" "$victim" <<'PYEOF' || fail "the FIFO is not one read_error failure"
import json, sys
s = json.load(open(sys.argv[1]))
f = [x for x in s["failures"] if sys.argv[2] in x["message"]]
assert len(f) == 1 and f[0]["reason"] == "read_error" and "not a regular file" in f[0]["message"], s["failures"]
assert s["encoded"] > 0 and s["encoded"] + s["failed"] == s["images"], s
PYEOF

# expect_refused STATUS CMD...: ends (no hang) with STATUS, naming the FIFO as not a regular file
expect_refused() {
    local want=$1
    shift
    set +e
    "${T[@]}" "$@" >"$WORK/out" 2>"$WORK/err"
    local rc=$?
    set -e
    [ "$rc" != 124 ] || fail "hung on the FIFO: $*"
    [ "$rc" = "$want" ] || { cat "$WORK/err"; fail "exit status $rc ($want expected): $*"; }
    grep -q "$victim: not a regular file" "$WORK/err" || { cat "$WORK/err"; fail "no 'not a regular file': $*"; }
}
caption_gpt2_dir "$WORK/gpt2"
expect_refused 1 "$CLIPCAP" caption --model "$CLIPCAP_FIXTURES/caption/mlp_tuned.safetensors" --gpt2 "$WORK/gpt2" \
    --clip "$CLIP_TINY" --images "$WORK/syn/coco/train2014"
n=$(ls "$WORK/syn/coco/train2014" | wc -l)
[ "$(wc -l <"$WORK/out")" = $((n - 1)) ] || fail "caption --images did not caption the other $((n - 1)) images"
expect_refused 1 "$CLIPCAP" embed --clip "$CLIP_TINY" "$WORK/syn/coco/train2014/$victim"
expect_refused 1 "$CLIPCAP" preprocess "$WORK/syn/coco/train2014/$victim" --size 32 --out "$WORK/x.npy"
echo "image_fifo: ok"
