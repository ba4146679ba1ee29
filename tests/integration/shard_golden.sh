#!/usr/bin/env bash
# `clipcap shard` writes the same bytes as the in-memory shard it replaced
# (before data/ds_spill.h every rank read and finalized the whole data set):
# a `clipcap synth --bad` corpus of 200 images in every input format, as one
# process with the default spill sizes and under `mpirun -np 2` with a tiny
# one (many chunks and buckets), gives shard files, token files, rejects,
# annotation files and index.json equal to the checksums in
# tests/fixtures/data/shard_golden.txt, which the pre-spill `clipcap shard`
# wrote (regenerate with SHARD_GOLDEN_WRITE=FILE and that binary as
# CLIPCAP). Paths of this run's scratch folder are replaced by TMP first.
# Bad records stay reported: the rejects are in the checksums, and each run
# logs the first ones, in rejects.jsonl order whatever the spill size.
. "$CLIPCAP_SOURCE/tests/integration/lib.bash"
export OMP_NUM_THREADS=2
golden="$CLIPCAP_FIXTURES/data/shard_golden.txt"

"$CLIPCAP" synth --out "$tmp/syn" --count 200 --bad --large 0 --per-shard 25 >/dev/null 2>"$tmp/synth.log"
s="$tmp/syn"

# sums RUN: "NAME SHA256" per output file of every case, paths normalised
sums() {
  local run=$1 f
  for f in "$tmp/$run"/*/* "$tmp/$run"/*.ann.json; do
    case "$f" in *summary.json) continue ;; esac
    printf '%s %s\n' "${f#"$tmp/$run/"}" "$(sed "s|$tmp|TMP|g" "$f" | sha256sum | cut -d' ' -f1)"
  done
}

# shard_all RUN RANKS: every case into $tmp/RUN
shard_all() {
  local run=$1 ranks=$2 out="$tmp/$1" c
  mkdir -p "$out"
  local -a cases=(
    "coco --format coco --input $s/coco/annotations/captions_train2014.json
      --input $s/coco/annotations/captions_val2014.json --images-root $s/coco --shards 7
      --write-annotations val2014:$out/coco.ann.json"
    "karpathy --format karpathy --input $s/karpathy/dataset_coco.json --images-root $s/coco
      --splits train,restval,test --write-annotations test:$out/karpathy.ann.json"
    "cc-files --format cc-files --input $s/cc/Train_GCC-training.tsv --images-root $s/cc/files --shards 5"
    "cc-tar --format cc-tar --input $s/cc/Train_GCC-training.tsv --images-root $s/cc/wds --shards 5
      --write-annotations train:$out/cc-tar.ann.json"
    "cc-tar-notsv --format cc-tar --images-root $s/cc/wds --shards 3 --no-image-check"
  )
  for c in "${cases[@]}"; do
    # shellcheck disable=SC2086 # the case strings are word lists
    set -- $c
    local name=$1
    shift
    on_ranks "$ranks" "$CLIPCAP" shard --gpt2 "$CLIPCAP_FIXTURES/gpt2" --out "$out/$name" "$@" \
      >"$out/$name.stdout" 2>"$out/$name.log" || { echo "shard $name ($run) failed:"; cat "$out/$name.log"; exit 1; }
    grep -q 'warn: rejected (' "$out/$name.log" || { echo "$name ($run): no reject logged"; exit 1; }
    [ ! -e "$out/$name/.shard-tmp" ]
  done
}

shard_all np1 1
sums np1 >"$tmp/np1.sums"
if [ -n "${SHARD_GOLDEN_WRITE:-}" ]; then
  cp "$tmp/np1.sums" "$SHARD_GOLDEN_WRITE"
  exit 0
fi
diff "$golden" "$tmp/np1.sums"
CLIPCAP_SHARD_SPILL_BYTES=3000 shard_all spill 2
grep -Eq 'in [0-9]{2,} bucket\(s\)' "$tmp/spill/cc-tar.log"   # the spill path was taken
sums spill | diff "$golden" -
warnings() { grep 'warn: ' "$1" | sed -e 's/^\[r0\/[0-9]*\] //' -e "s|$tmp/[a-z0-9]*/|TMP/|g"; }
for log in "$tmp"/np1/*.log; do
  diff <(warnings "$log") <(warnings "$tmp/spill/$(basename "$log")")
done
echo "shard_golden: ok"
