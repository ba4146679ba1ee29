#!/usr/bin/env bash
# CLIP ViT-B/32 image encoding on the CPU: clipcap's tower against the same
# tower in PyTorch (what a Python user runs: the hub model's ops, F.linear /
# F.conv2d / F.layer_norm / softmax), same random weights, same batch of
# images, same thread count, one run each after a warm-up pass, at fp32 and
# bf16 (clipcap --precision bf16; PyTorch under torch.autocast("cpu",
# bfloat16)), each twice: with the OpenBLAS settings of this environment
# (the workplace pins OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE) and with both
# unset, as on users' machines (unset for the benchmark commands only).
# Prints images/s, the ratios, each side's GFLOP/s and share of the
# precision's peak, and the rate of the tower's largest GEMM through
# ops_matmul at the same precision (the bar the tower's own rate is held to).
#
#   bench/bench_clip.sh [BATCH] [BATCHES] [THREADS]   (default 8 4 $(nproc))
#   BUILD=path/to/build-dir   (default build; needs libclipcap_common.a there)
#
# The peaks are measured (bench/bench_peak.c: fp32 FMA and bf16 dot
# products at the issue rate on THREADS threads), and give the bound on
# bf16's speed-up: a tower at its bf16 peak against the pinned fp32 tower.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.bash
batch="${1:-8}"; batches="${2:-4}"; threads="${3:-$(nproc)}"
build="${BUILD:-build}"
out=bench/out/clip
bench_build_c "$build" bench/bench_clip.c "$out/bench_clip"
# the peaks are context: a compiler without AVX512-BF16 intrinsics (GCC < 10) leaves them out
if "${CC:-cc}" -O2 -std=c11 -fopenmp bench/bench_peak.c -o "$out/bench_peak"; then
  "$out/bench_peak" "$threads" >"$out/peak.txt"
else
  echo "bench_peak did not build: no peaks" >&2; : >"$out/peak.txt"
fi
peak_of() { sed -n "s/^$1 peak: \([0-9.]*\) GFLOP.*/\1/p" "$out/peak.txt"; }
fp32_peak=$(peak_of "fp32 FMA"); bf16_peak=$(peak_of "bf16 dot")
echo "OpenBLAS pin here: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-unset}; load: $(cut -d' ' -f1-3 /proc/loadavg)"
# the fp32 reference embeddings (torch.npy) first
OMP_NUM_THREADS="$threads" /usr/bin/python3 bench/bench_clip.py "$out" "$batch" 1 "$threads" fp32 >/dev/null
for pin in pinned unpinned; do
  run=(env)
  [ "$pin" = unpinned ] && run=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)
  for prec in fp32 bf16; do
    "${run[@]}" OMP_NUM_THREADS="$threads" /usr/bin/python3 bench/bench_clip.py "$out" "$batch" "$batches" "$threads" \
      "$prec" >"$out/torch.$pin.$prec.txt"
    "${run[@]}" OMP_NUM_THREADS="$threads" "$out/bench_clip" "$out" "$batches" "$threads" "$prec" \
      >"$out/clipcap.$pin.$prec.txt"
  done
done

# FLOPs of one ViT-B/32 image (multiply-adds × 2): patch GEMM, per layer the
# qkv/out/fc1/fc2 GEMMs and attention's QKᵀ and PV, the projection.
rate() { grep -o "$2: [0-9.]*" "$1" | cut -d' ' -f2; }
{
  for pin in pinned unpinned; do for prec in fp32 bf16; do
    echo "$pin $prec $(rate "$out/torch.$pin.$prec.txt" images/s) $(rate "$out/clipcap.$pin.$prec.txt" images/s)" \
      "$(rate "$out/clipcap.$pin.$prec.txt" GFLOP/s) $(grep -o 'min cosine = [0-9.]*' "$out/clipcap.$pin.$prec.txt" | cut -d' ' -f4)"
  done; done
} | awk -v threads="$threads" -v p32="${fp32_peak:-0}" -v p16="${bf16_peak:-0}" '
BEGIN {
  W = 768; I = 3072; T = 50; L = 12; H = 12; D = 64
  flop = 2 * 49 * 3072 * W + L * (2 * T * W * (3 * W + W + 2 * I) + 2 * 2 * H * T * T * D) + 2 * W * 512
  printf "ViT-B/32: %.2f GFLOP per image; measured peaks on %d threads: fp32 FMA %.1f, bf16 dot %.1f GFLOP/s\n", flop / 1e9, threads, p32, p16
  printf "%-9s %-5s %10s %12s %7s %14s %8s %13s %8s\n", "OpenBLAS", "prec", "torch img/s", "clipcap img/s", "ratio", "clipcap GFLOP/s", "% peak", "GEMM GFLOP/s", "% GEMM"
}
{ pin = $1; prec = $2; t = $3; c = $4; g = $5; peak = (prec == "bf16" ? p16 : p32)
  printf "%-9s %-5s %10.2f %12.2f %6.2fx %14.1f %7.1f%% %13.1f %7.1f%%\n", pin, prec, t, c, c / t, c * flop / 1e9, (peak > 0 ? 100 * c * flop / 1e9 / peak : 0), g, 100 * c * flop / 1e9 / g
  if (prec == "fp32" && pin == "pinned") base = c
  if (prec == "bf16") printf "          %s bf16: clipcap %.2fx its pinned fp32, min cosine with torch fp32 %s\n", pin, c / base, $6 }
END { if (p16 > 0 && base > 0) printf "bound: a tower at the bf16 peak would be %.2fx the pinned fp32 tower\n", p16 * 1e9 / flop / base }'
