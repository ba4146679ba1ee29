#!/usr/bin/env bash
# CLIP ViT-B/32 image encoding on the CPU: clipcap's tower against the same
# tower in PyTorch (what a Python user runs: the hub model's ops, F.linear /
# F.conv2d / F.layer_norm / softmax), same random weights, same batch of
# images, same thread count, one run each after a warm-up pass. Prints
# images/s of both, the ratio, and each side's share of the machine's peak
# FLOP/s.
#
#   bench/bench_clip.sh [BATCH] [BATCHES] [THREADS]   (default 8 4 $(nproc))
#   BUILD=path/to/build-dir   (default build; needs libclipcap_common.a there)
#
# Peak FLOP/s = cores × FLOP/cycle × clock: FLOP/cycle is 2 FMA pipes × the
# vector width in floats × 2 (multiply + add), i.e. 64 with AVX-512, 32 with
# AVX2+FMA (Haswell and later, AMD Zen), 16 with AVX alone; the clock is
# /proc/cpuinfo's "cpu MHz" (the nominal clock: turbo makes the true peak
# higher, so the fractions printed are upper bounds).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.bash
batch="${1:-8}"; batches="${2:-4}"; threads="${3:-$(nproc)}"
build="${BUILD:-build}"
out=bench/out/clip
bench_build_c "$build" bench/bench_clip.c "$out/bench_clip"

OMP_NUM_THREADS="$threads" /usr/bin/python3 bench/bench_clip.py "$out" "$batch" "$batches" "$threads" | tee "$out/torch.txt"
OMP_NUM_THREADS="$threads" "$out/bench_clip" "$out" "$batches" "$threads" | tee "$out/clipcap.txt"

# FLOPs of one ViT-B/32 image (multiply-adds × 2): patch GEMM, per layer the
# qkv/out/fc1/fc2 GEMMs and attention's QKᵀ and PV, the projection.
flags=$(grep -m1 '^flags' /proc/cpuinfo)
mhz=$(grep -m1 '^cpu MHz' /proc/cpuinfo | awk '{print $4}')
fpc=16
case " $flags " in *" avx2 "*) case " $flags " in *" fma "*) fpc=32;; esac;; esac
case " $flags " in *" avx512f "*) fpc=64;; esac
awk -v t="$(grep -o 'images/s: [0-9.]*' "$out/torch.txt" | cut -d' ' -f2)" \
    -v c="$(grep -o 'images/s: [0-9.]*' "$out/clipcap.txt" | cut -d' ' -f2)" \
    -v threads="$threads" -v mhz="$mhz" -v fpc="$fpc" 'BEGIN {
  W = 768; I = 3072; T = 50; L = 12; H = 12; D = 64
  flop = 2 * 49 * 3072 * W + L * (2 * T * W * (3 * W + W + 2 * I) + 2 * 2 * H * T * T * D) + 2 * W * 512
  peak = threads * fpc * mhz * 1e6
  printf "ViT-B/32: %.2f GFLOP per image; peak %.0f GFLOP/s (%d threads x %d FLOP/cycle x %.0f MHz)\n", flop / 1e9, peak / 1e9, threads, fpc, mhz
  printf "torch:   %7.2f images/s  %6.1f GFLOP/s  %4.1f%% of peak\n", t, t * flop / 1e9, 100 * t * flop / peak
  printf "clipcap: %7.2f images/s  %6.1f GFLOP/s  %4.1f%% of peak\n", c, c * flop / 1e9, 100 * c * flop / peak
  printf "ratio clipcap/torch: %.2fx\n", c / t }'
