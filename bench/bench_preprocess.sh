#!/usr/bin/env bash
# Decode + CLIP preprocessing, clipcap vs openai/CLIP's _transform (Pillow +
# torchvision), on the SAME images held in memory, same thread count, one
# run each; prints images/s and the ratio. Images: ../shared/images/*.jpg (beside the project)
# when present, plus synthetic PNG (RGB, RGBA), WebP, progressive and grey
# JPEG made by bench_preprocess_ref.py --make.
# usage: bench/bench_preprocess.sh [THREADS...]   (default: 1 2)
#        BUILD=dir (default build-bench): the build directory to use
#        BUILD_ONLY=1: only build $BUILD/bench_preprocess (bench_fast_resize.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
threads=("$@")
[ ${#threads[@]} -eq 0 ] && threads=(1 2)
need=()
/usr/bin/python3 -c "import torchvision" 2>/dev/null || need+=(python3-torchvision)
/usr/bin/python3 -c "import PIL" 2>/dev/null || need+=(python3-pil)
if [ ${#need[@]} -gt 0 ]; then apt-get install -y "${need[@]}" >/dev/null; fi
b=${BUILD:-build-bench}
cmake -S . -B "$b" -DCLIPCAP_SANITIZED_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$b" -j2 --target clipcap_common >/dev/null
mpilink=$(mpicc --showme:link)
mpicomp=$(mpicc --showme:compile)
# shellcheck disable=SC2086
gcc -std=c11 -D_GNU_SOURCE -O2 -Icommon $mpicomp bench/bench_preprocess.c "$b/libclipcap_common.a" -o "$b/bench_preprocess" \
  $(pkg-config --cflags --libs jansson libzstd libuv libwebp libwebpdemux libpng libjpeg lmdb openblas libxxhash) \
  $mpilink -fopenmp -lpthread -lm
[ "${BUILD_ONLY:-0}" = 1 ] && exit 0
imgdir="$b/bench-images"
/usr/bin/python3 bench/bench_preprocess_ref.py --make "$imgdir"
files=("$imgdir"/*)
shopt -s nullglob
files+=(../shared/images/*.jpg tests/fixtures/image/src/jpeg_large_fast.jpg)
echo "bench_preprocess: ${#files[@]} images, size 224 (Pillow $(/usr/bin/python3 -c 'import PIL; print(PIL.__version__)'), torchvision $(/usr/bin/python3 -c 'import torchvision; print(torchvision.__version__)'))"
passes=40
for t in "${threads[@]}"; do
  read -r ref_w ref_c < <(OMP_NUM_THREADS=1 /usr/bin/python3 bench/bench_preprocess_ref.py --size 224 --threads "$t" --passes "$passes" "${files[@]}")
  read -r our_w our_c < <("$b/bench_preprocess" --size 224 --threads "$t" --passes "$passes" "${files[@]}")
  read -r fast_w fast_c < <("$b/bench_preprocess" --size 224 --threads "$t" --passes "$passes" --fast-resize "${files[@]}")
  read -r fast2_w fast2_c < <("$b/bench_preprocess" --size 224 --threads "$t" --passes "$passes" --fast-resize=2 "${files[@]}")
  # One thread: compare images per CPU second (the machine may be shared);
  # more threads: images per wall second.
  if [ "$t" -eq 1 ]; then r=$ref_c o=$our_c f=$fast_c f2=$fast2_c unit="img/CPU-s"
  else r=$ref_w o=$our_w f=$fast_w f2=$fast2_w unit="img/s wall"; fi
  awk -v t="$t" -v r="$r" -v o="$o" -v f="$f" -v f2="$f2" -v u="$unit" 'BEGIN {
    printf "threads %d (%s): Pillow+torchvision %.1f | clipcap exact %.1f (%.2fx) | --fast-resize %.1f (%.2fx) | --fast-resize=2 %.1f (%.2fx)\n",
      t, u, r, o, o / r, f, f / r, f2, f2 / r }'
done
