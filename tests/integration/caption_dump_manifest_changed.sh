#!/usr/bin/env bash
# The dump's resume state is keyed on the manifest shards' checksums
# (index.json xxh128): after re-sharding into the same manifest folder with
# a split added, or pointed at another data set's output folder with the
# same shard count, `caption --manifest` used to report the old captions as
# done ("done 0/N") and never caption the new images. It must refuse,
# naming the shard, both checksums and what to do; a new output folder then
# gives a complete dump of the new manifest, and an unchanged manifest
# still resumes (re-running a finished dump succeeds).
source "$(dirname "$0")/caption_dump_lib.bash"
make_data 16
shard=("$CLIPCAP" shard --format karpathy --input "$WORK/syn/karpathy/dataset_coco.json" --images-root "$WORK/syn/coco"
    --gpt2 "$CLIPCAP_FIXTURES/gpt2" --shards 3 --no-image-check)
cap=("$CLIPCAP" caption --store "$WORK/store" --model "$MODEL" --gpt2 "$GPT2")
expect_changed() { # DIR MANIFEST: refused, naming the manifest change
    set +e
    "${cap[@]}" --manifest "$2" --out "$1" >/dev/null 2>"$WORK/err.log"
    local rc=$?
    set -e
    [ "$rc" != 0 ] || { cat "$WORK/err.log"; fail "caption into $1 succeeded on a changed manifest"; }
    grep -q "was written for manifest shard shard-0000.-of-00003.jsonl.zst with xxh128 [0-9a-f]\{32\}, the manifest's index.json now gives [0-9a-f]\{32\}: the manifest changed" \
        "$WORK/err.log" || { cat "$WORK/err.log"; fail "no manifest-changed message"; }
}
"${shard[@]}" --splits train,test --out "$WORK/m" >/dev/null 2>"$WORK/s1.log"
"${cap[@]}" --manifest "$WORK/m" --out "$WORK/caps" >/dev/null 2>"$WORK/c1.log" || { cat "$WORK/c1.log"; fail "first dump"; }
"${cap[@]}" --manifest "$WORK/m" --out "$WORK/caps" >/dev/null 2>"$WORK/c1b.log" || { cat "$WORK/c1b.log"; fail "re-run of a finished dump"; }
check_dump "$WORK/caps" "$WORK/m"

# re-shard into the same folder with a split added: same shard count
"${shard[@]}" --splits train,test,restval --out "$WORK/m" >/dev/null 2>"$WORK/s2.log"
expect_changed "$WORK/caps" "$WORK/m"
"${cap[@]}" --manifest "$WORK/m" --out "$WORK/caps2" >/dev/null 2>"$WORK/c2.log" || { cat "$WORK/c2.log"; fail "new dump"; }
check_dump "$WORK/caps2" "$WORK/m"

# another data set (other seed) with the same shard count, into the first dump's folder
"$CLIPCAP" synth --out "$WORK/syn2" --count 16 --seed 7 --layouts coco,karpathy >/dev/null 2>"$WORK/synth2.log"
"$CLIPCAP" shard --format karpathy --input "$WORK/syn2/karpathy/dataset_coco.json" --images-root "$WORK/syn2/coco" \
    --gpt2 "$CLIPCAP_FIXTURES/gpt2" --shards 3 --no-image-check --out "$WORK/other" >/dev/null 2>"$WORK/s3.log"
expect_changed "$WORK/caps2" "$WORK/other"
echo "caption_dump_manifest_changed: ok"
