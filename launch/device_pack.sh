#!/usr/bin/env bash
# Build the CUDA backend HERE and pack, into .devpack/, what a GPU machine
# without our Debian libraries needs to run its checks
# (launch/device_check.sh, run THERE from the repository root):
#   .devpack/bin/  the unit tests that exercise ops and models, clipcap,
#                  bench_clip, bench_caption (debug info stripped)
#   .devpack/lib/  the shared libraries they load, except glibc's and
#                  CUDA's (libcudart, libcublas*, libnccl, libcuda come
#                  with the GPU machine's CUDA 13 install and driver)
# The fixtures travel with the working tree (tests/fixtures is tracked).
#
#   launch/device_pack.sh            BUILD=build-cuda by default
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/cuda/bin:$PATH
build="${BUILD:-build-cuda}"
pack=.devpack
jobs="${JOBS:-2}"

cmake -S . -B "$build" -DCLIPCAP_CUDA=ON -DCLIPCAP_SANITIZED_TESTS=OFF >/dev/null
tests=()
for t in test_ops_forward test_ops_backward test_gpt2 test_mappers test_clip_vit test_clipcap_train_step \
         test_decode test_captioner; do
  [ -f "tests/unit/$t.c" ] && tests+=("$t")
done
cmake --build "$build" -j"$jobs" --target clipcap "${tests[@]}"

rm -rf "$pack"
mkdir -p "$pack/bin" "$pack/lib"
for t in "${tests[@]}" clipcap; do
  cp "$build/$t" "$pack/bin/"
done

# bench_clip (bench/bench_clip.c) and bench_caption (bench/bench_caption.c)
# against the CUDA library, linked as the build links the tests.
link_rsp="$build/CMakeFiles/test_clip_vit.dir/linkLibs.rsp"
[ -f "$link_rsp" ] || { echo "device_pack: $link_rsp missing (CMake's link line for the tests)" >&2; exit 1; }
for b in bench_clip bench_caption; do
  ( cd "$build" && g++ -Wl,--as-needed -x c -std=c11 -O2 -D_GNU_SOURCE -I../common -fopenmp \
      $(mpicc --showme:compile) "../bench/$b.c" -x none @CMakeFiles/test_clip_vit.dir/linkLibs.rsp \
      -L/usr/local/cuda/lib64 -o "../$pack/bin/$b" )
done

# The shared-library closure, minus what the GPU machine provides.
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so|libresolv\.so|libcuda\.so|libcudart\.so|libcublas\.so|libcublasLt\.so|libnccl\.so|libnvidia)'
for b in "$pack"/bin/*; do
  ldd "$b" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}'
done | sort -u | while read -r name path; do
  if [[ "$name" =~ $skip ]]; then continue; fi
  cp -L "$path" "$pack/lib/$name"
done
# Loaded with dlopen, so ldd does not list it (common/text/bpe.c).
cp -L "$(ldconfig -p | awk '/libutf8proc\.so\.2 / {print $NF; exit}')" "$pack/lib/libutf8proc.so.2"
missing=$(for b in "$pack"/bin/*; do ldd "$b"; done | grep -c "not found" || true)
[ "$missing" = 0 ] || { echo "device_pack: some libraries were not found here" >&2; exit 1; }
strip --strip-debug "$pack"/bin/* "$pack"/lib/*

du -sh "$pack"
total=$(du -sm "$pack" | cut -f1)
[ "$total" -lt 40 ] || { echo "device_pack: $pack is ${total} MB (limit 40)" >&2; exit 1; }
echo "device_pack: $(ls "$pack/bin" | wc -l) binaries, $(ls "$pack/lib" | wc -l) libraries in $pack"
echo "device_pack: on the GPU machine run: bash launch/device_check.sh   (carry: .devpack)"
