#!/usr/bin/env bash
# Caption decoding on the CPU: clipcap's KV-cache decoder (common/nn/decode)
# against the paper's own generation code in PyTorch (generate2 greedy and
# generate_beam beam 5: one prefix at a time, the whole sequence recomputed
# every step), same GPT-2 124M-shaped random model, same prefixes (the MLP
# mapper's, k = 10, from random 512-d ViT-B/32 CLIP embeddings), same
# threads, one run each. Only decoding is timed (prefix -> tokens): the CLIP
# tower and the mapper cost the same per image either way (bench_clip.sh
# times the tower).
#
# PyTorch decodes N_GREEDY (greedy) and N_BEAM (beam) prefixes; clipcap
# decodes the same prefixes one at a time (the reference's way: checks the
# token ids against PyTorch's) and then GREPEAT (BREPEAT) copies of each
# together, batched (continuous batching: max_batch below the count, so finished
# captions leave and waiting prefixes fill their slots). Copies decode to
# the same work per caption as the originals, so captions/s compare
# directly. Prints captions/s of each, the token agreement and the ratios.
# Most of the time is the PyTorch side (minutes: it recomputes the whole
# sequence for every token); the first run also writes the 500 MB model.
# Everything runs at fp32 and bf16 (clipcap --precision bf16; PyTorch greedy
# under torch.autocast("cpu", bfloat16)), with this environment's OpenBLAS
# settings (the workplace pins OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE) and
# with both unset, as on users' machines (for the benchmark commands only).
#
#   bench/bench_caption.sh [THREADS] [N_GREEDY] [N_BEAM] [GREPEAT] [BREPEAT]   (default 2 2 1 24 8)
#   BUILD=path/to/build-dir   (default build; needs libclipcap_common.a there)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.bash
threads="${1:-2}"; n_greedy="${2:-2}"; n_beam="${3:-1}"; grepeat="${4:-24}"; brepeat="${5:-8}"
build="${BUILD:-build}"
out=bench/out/caption
bench_build_c "$build" bench/bench_caption.c "$out/bench_caption"

export OMP_NUM_THREADS="$threads"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "OpenBLAS pin here: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-unset}"
/usr/bin/python3 bench/bench_caption.py "$out" "$n_greedy" "$n_beam" "$threads" setup
agree() { # FILE_A FILE_B -> "same/total"
  paste -d'|' "$1" "$2" | awk -F'|' '{ n++; s += ($1 == $2) } END { printf "%d/%d", s, n }'
}
rate() { grep -F "$1" "$2" | sed -n 's/.*captions\/s: \([0-9.]*\).*/\1/p'; }
for pin in pinned unpinned; do
  run=(env)
  [ "$pin" = unpinned ] && run=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)
  echo "== OpenBLAS $pin"
  "${run[@]}" /usr/bin/python3 bench/bench_caption.py "$out" "$n_greedy" "$n_beam" "$threads" | tee "$out/torch.$pin.txt"
  "${run[@]}" /usr/bin/python3 bench/bench_caption.py "$out" "$n_greedy" "$n_beam" "$threads" bf16 |
    tee "$out/torch.$pin.bf16.txt"
  # greedy: max_batch 32 for GREPEAT·N_GREEDY captions; beam: 5 prefixes at a time
  for prec in fp32 bf16; do
    "${run[@]}" "$out/bench_caption" "$out" "$threads" "$n_greedy" "$n_beam" "$grepeat" "$brepeat" 32 25 "$prec" |
      tee "$out/clipcap.$pin.$prec.txt"
  done
  echo "token ids equal to PyTorch fp32's: greedy $(agree "$out/c_greedy.txt" "$out/torch_greedy.txt") captions," \
       "beam $(agree "$out/c_beam.txt" "$out/torch_beam.txt") beams; clipcap bf16 vs clipcap fp32: greedy" \
       "$(agree "$out/c_greedy_bf16.txt" "$out/c_greedy.txt"), beam $(agree "$out/c_beam_bf16.txt" "$out/c_beam.txt");" \
       "torch bf16 vs torch fp32: greedy $(agree "$out/torch_greedy_bf16.txt" "$out/torch_greedy.txt")"
  c="$out/clipcap.$pin"
  awk -v tg="$(rate "torch" "$out/torch.$pin.txt" | sed -n 1p)" -v tb="$(rate "torch" "$out/torch.$pin.txt" | sed -n 2p)" \
      -v tg16="$(rate "torch" "$out/torch.$pin.bf16.txt")" \
      -v g1="$(rate "greedy one at a time" "$c.fp32.txt")" -v gb="$(rate "greedy batched" "$c.fp32.txt")" \
      -v b1="$(rate "beam5 one at a time" "$c.fp32.txt")" -v bb="$(rate "beam5 batched" "$c.fp32.txt")" \
      -v h1="$(rate "greedy one at a time" "$c.bf16.txt")" -v hb="$(rate "greedy batched" "$c.bf16.txt")" \
      -v c1="$(rate "beam5 one at a time" "$c.bf16.txt")" -v cb="$(rate "beam5 batched" "$c.bf16.txt")" -v pin="$pin" 'BEGIN {
    printf "%s captions/s        %10s %10s %8s\n", pin, "fp32", "bf16", "bf16/fp32"
    printf "torch greedy             %10.4f %10.4f %7.2fx\n", tg, tg16, tg16 / tg
    printf "clipcap greedy 1 at a time %8.4f %10.4f %7.2fx\n", g1, h1, h1 / g1
    printf "clipcap greedy batched   %10.4f %10.4f %7.2fx\n", gb, hb, hb / gb
    printf "clipcap beam5 1 at a time %9.4f %10.4f %7.2fx\n", b1, c1, c1 / b1
    printf "clipcap beam5 batched    %10.4f %10.4f %7.2fx\n", bb, cb, cb / bb
    printf "clipcap/torch greedy batched: fp32 %.1fx, bf16 %.1fx (vs torch bf16)\n", gb / tg, hb / tg16 }'
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
