#!/usr/bin/env bash
# One ClipCap training step on the CPU (MLP mapper + GPT-2 small tuned, fp32:
# forward, loss, backward, AdamW): clipcap's against the same model in plain
# PyTorch (what a user of the reference code runs), same shapes, same batch,
# same thread count, random weights, one warm-up step then STEPS timed.
# Prints steps/s of both and the ratio.
#
#   bench/bench_train.sh [BATCH] [CAPTION_LEN] [STEPS] [THREADS]   (default 4 20 2 $(nproc))
#   BUILD=path/to/build-dir   (default build; needs libclipcap_common.a there)
set -euo pipefail
cd "$(dirname "$0")/.."
batch="${1:-4}"; len="${2:-20}"; steps="${3:-2}"; threads="${4:-$(nproc)}"; prefix=10
build="${BUILD:-build}"
out=bench/out/train
[ -f "$build/libclipcap_common.a" ] || { echo "bench_train: $build/libclipcap_common.a not found (build first or set BUILD)" >&2; exit 1; }
mkdir -p "$out"
mpicc -O2 -std=c11 -D_GNU_SOURCE -fopenmp -Icommon bench/bench_train.c "$build/libclipcap_common.a" \
  $(pkg-config --cflags --libs jansson libzstd libuv libwebp libwebpdemux libpng libjpeg lmdb openblas libxxhash) \
  -lm -o "$out/bench_train"

OMP_NUM_THREADS="$threads" /usr/bin/python3 bench/bench_train.py "$batch" "$len" "$prefix" "$threads" "$steps" | tee "$out/torch.txt"
OMP_NUM_THREADS="$threads" "$out/bench_train" "$batch" "$len" "$prefix" "$threads" "$steps" | tee "$out/clipcap.txt"
awk -v t="$(grep -o 'steps/s: [0-9.]*' "$out/torch.txt" | cut -d' ' -f2)" \
    -v c="$(grep -o 'steps/s: [0-9.]*' "$out/clipcap.txt" | cut -d' ' -f2)" \
    'BEGIN { printf "ratio clipcap/torch: %.2fx\n", c / t }'
