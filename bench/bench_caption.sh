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
/usr/bin/python3 bench/bench_caption.py "$out" "$n_greedy" "$n_beam" "$threads" | tee "$out/torch.txt"
# greedy: max_batch 32 for GREPEAT·N_GREEDY captions; beam: 5 prefixes at a time
"$out/bench_caption" "$out" "$threads" "$n_greedy" "$n_beam" "$grepeat" "$brepeat" 32 25 | tee "$out/clipcap.txt"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

agree() { # FILE_A FILE_B -> "same/total"
  paste -d'|' "$1" "$2" | awk -F'|' '{ n++; s += ($1 == $2) } END { printf "%d/%d", s, n }'
}
echo "token ids equal to PyTorch's: greedy $(agree "$out/c_greedy.txt" "$out/torch_greedy.txt") captions," \
     "beam $(agree "$out/c_beam.txt" "$out/torch_beam.txt") beams"
rate() { grep -F "$1" "$2" | sed -n 's/.*captions\/s: \([0-9.]*\).*/\1/p'; }
awk -v tg="$(rate "torch" "$out/torch.txt" | sed -n 1p)" -v tb="$(rate "torch" "$out/torch.txt" | sed -n 2p)" \
    -v g1="$(rate "greedy one at a time" "$out/clipcap.txt")" -v gb="$(rate "greedy batched" "$out/clipcap.txt")" \
    -v b1="$(rate "beam5 one at a time" "$out/clipcap.txt")" -v bb="$(rate "beam5 batched" "$out/clipcap.txt")" 'BEGIN {
  printf "ratio clipcap/torch captions/s: greedy batched %.1fx, greedy one at a time %.1fx, beam5 batched %.1fx, beam5 one at a time %.1fx\n",
         gb / tg, g1 / tg, bb / tb, b1 / tb }'
