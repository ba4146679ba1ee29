#!/usr/bin/env bash
# A command not started by a launcher never initialises MPI
# (core/mpictx.h): with an Open MPI setting that makes MPI_Init fail
# (OMPI_MCA_pml=bogus), version, score, tokenize and shard still succeed
# alone and print what they print under `mpirun -np 2` (run without that
# setting), while CLIPCAP_MPI=1, which forces MPI_Init, does fail with it
# (so the setting is a real trap, not a no-op).
. "$CLIPCAP_SOURCE/tests/integration/lib.bash"
fx="$CLIPCAP_FIXTURES"
unset OMPI_COMM_WORLD_SIZE PMIX_RANK PMI_RANK PMI_SIZE MV2_COMM_WORLD_SIZE PALS_RANKID CLIPCAP_MPI

alone() { OMPI_MCA_pml=bogus "$CLIPCAP" "$@"; }

if CLIPCAP_MPI=1 OMPI_MCA_pml=bogus "$CLIPCAP" version >/dev/null 2>&1; then
  echo "MPI_Init succeeded with OMPI_MCA_pml=bogus: the trap does not work"; exit 1
fi

alone version | grep -q '"ranks": 1'
[ "$(mpirun --oversubscribe -np 2 "$CLIPCAP" version | grep -c '"ranks": 2')" -eq 1 ]

score=(score --results "$fx/metrics/results.json" --annotations "$fx/metrics/annotations.json")
alone "${score[@]}" >"$tmp/score.json" 2>"$tmp/score.log" || { cat "$tmp/score.log"; exit 1; }
mpirun --oversubscribe -np 2 "$CLIPCAP" "${score[@]}" >"$tmp/score.np2" 2>/dev/null
cmp "$tmp/score.json" "$tmp/score.np2"

head -200 "$fx/bpe/corpus.txt" >"$tmp/corpus.txt"
alone tokenize --gpt2 "$fx/gpt2" --input "$tmp/corpus.txt" >"$tmp/ids"
mpirun --oversubscribe -np 2 "$CLIPCAP" tokenize --gpt2 "$fx/gpt2" --input "$tmp/corpus.txt" >"$tmp/ids.np2"
cmp "$tmp/ids" "$tmp/ids.np2"

# shard reduces token statistics and gathers the shard table over the ranks
"$CLIPCAP" synth --out "$tmp/syn" --count 12 >/dev/null 2>&1
shard=(shard --gpt2 "$fx/gpt2" --shards 2 --format coco --input "$tmp/syn/coco/annotations/captions_train2014.json"
       --images-root "$tmp/syn/coco")
alone "${shard[@]}" --out "$tmp/m1" >/dev/null 2>"$tmp/shard.log" || { cat "$tmp/shard.log"; exit 1; }
mpirun --oversubscribe -np 2 "$CLIPCAP" "${shard[@]}" --out "$tmp/m2" >/dev/null 2>&1
for f in "$tmp/m1"/*; do
  case "$f" in *summary.json) continue ;; esac
  cmp "$f" "$tmp/m2/$(basename "$f")"
done
echo "no_mpi: ok"
