# Shared by integration tests (sourced, not a test itself): a scratch
# directory, running a command on N ranks, and the tiny training data set.
set -euo pipefail
: "${CLIPCAP:?set by ctest}" "${CLIPCAP_FIXTURES:?set by ctest}"

# tmp: a fresh scratch directory named after the test, removed on exit (a
# test that needs more at exit sets its own trap, removing "$tmp" too).
mkdir -p "${CLIPCAP_TMP:-/tmp}"
tmp=$(mktemp -d --tmpdir="${CLIPCAP_TMP:-/tmp}")
trap 'rm -rf "$tmp"' EXIT

# on_ranks RANKS CMD...: CMD as one process (RANKS 1) or under mpirun -np RANKS.
on_ranks() {
  local ranks=$1
  shift
  if [ "$ranks" -gt 1 ]; then mpirun --oversubscribe -np "$ranks" "$@"; else "$@"; fi
}

# same_on_2_ranks OUT CMD...: CMD's stdout into OUT; CMD under mpirun -np 2
# must print the same bytes (into OUT.np2).
same_on_2_ranks() {
  local out=$1
  shift
  "$@" >"$out"
  on_ranks 2 "$@" >"$out.np2"
  cmp "$out" "$out.np2"
}

# train_data DIR: from `clipcap synth`'s COCO layout in DIR/syn, DIR/man (its
# train2014 captions in 2 shards, GPT-2 tokens) and DIR/store (the tiny
# CLIP's embeddings of its images); logs in DIR/{shard,extract}.log.
train_data() {
  "$CLIPCAP" shard --gpt2 "$CLIPCAP_FIXTURES/gpt2" --shards 2 --out "$1/man" --format coco \
    --input "$1/syn/coco/annotations/captions_train2014.json" --images-root "$1/syn/coco" >/dev/null 2>"$1/shard.log"
  "$CLIPCAP" extract --manifest "$1/man" --clip "$CLIPCAP_FIXTURES/clip/tiny" --store "$1/store" >/dev/null 2>"$1/extract.log"
}
