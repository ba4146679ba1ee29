#!/usr/bin/env bash
# The CUDA backend's checks, run ON THE GPU MACHINE from the repository root
# after launch/device_pack.sh has filled .devpack/ on the build machine
# (carry .devpack). Needs there: the NVIDIA driver, CUDA 13 (libcudart,
# libcublas; compute-sanitizer if present), python3 with torch (GPU) and
# numpy for the benchmark. Needs NOT: our Debian libraries (they are in
# .devpack/lib) or MPI (no unit test initialises MPI; no stage is run).
#
#   bash launch/device_check.sh        logs in $OUT (default /tmp/clipcap-device-check)
#
# Steps, about 3-4 minutes in all:
#   1. nvidia-smi, and every packed binary's libraries resolve
#   2. the unit tests of ops and models on the GPU (the same tests and
#      fixtures as CI on the CPU backend)
#   3. the op tests again under compute-sanitizer memcheck
#   4. ViT-B/32 image encoding: clipcap-CUDA vs PyTorch on the GPU (FP32)
#      vs PyTorch on the CPU, with clipcap's embeddings checked against
#      torch's (bench_clip exits 1 beyond 1e-4 relative)
#   5. caption decoding, GPT-2 124M-shaped random model (written here by
#      bench/bench_caption.py, 500 MB, deleted after): clipcap-CUDA's KV-cache
#      decoder (greedy 256 prefixes, max_batch 128; beam 5 32 prefixes,
#      max_batch 80) vs the paper's generate2 / generate_beam in PyTorch on
#      the GPU (one prefix at a time, as the reference runs, 4 greedy and 2
#      beam prefixes), token ids compared on the prefixes both decoded alone
# summary.txt lists each step's exit status; the script's status is 0 only
# if every step passed.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp/clipcap-device-check}"
mkdir -p "$out/tmp"
pack="$PWD/.devpack"
summary="$out/summary.txt"
: >"$summary"
[ -d "$pack/bin" ] || { echo "device_check: $pack/bin missing: run launch/device_pack.sh first and carry .devpack" | tee -a "$summary"; exit 1; }

# Our binaries see the packed libraries first, then wherever this machine
# keeps CUDA's; python and the NVIDIA tools keep their own environment.
libs="$pack/lib"
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$d" ] && libs="$libs:$d"
done
ours=(env "LD_LIBRARY_PATH=$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
export CLIPCAP_FIXTURES="$PWD/tests/fixtures" CLIPCAP_TMP="$out/tmp" OMP_NUM_THREADS=4
failed=0
step() { # name status
  printf '%-40s %s\n' "$1" "$([ "$2" = 0 ] && echo ok || echo "FAIL (exit $2)")" | tee -a "$summary"
  [ "$2" = 0 ] || failed=1
}
t_start=$(date +%s)

# 1. the machine and the libraries
{ nvidia-smi; nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv; } >"$out/nvidia-smi.txt" 2>&1
step nvidia-smi $?
for b in "$pack"/bin/*; do echo "== $b"; "${ours[@]}" ldd "$b"; done >"$out/ldd.txt" 2>&1
! grep -q "not found" "$out/ldd.txt"
step "libraries resolve (ldd.txt)" $?

# 2. unit tests
for t in test_ops_forward test_ops_backward test_mappers test_gpt2 test_clip_vit test_clipcap_train_step \
         test_decode test_captioner; do
  [ -x "$pack/bin/$t" ] || continue
  s=$(date +%s.%N)
  timeout 120 "${ours[@]}" "$pack/bin/$t" >"$out/$t.log" 2>&1
  rc=$?
  awk -v a="$s" -v b="$(date +%s.%N)" 'BEGIN { printf "seconds: %.2f\n", b - a }' >>"$out/$t.log"
  step "$t" $rc
done

# 3. memcheck: out-of-bounds or misaligned accesses in any kernel, and
# CUDA API errors, on the op tests' shapes
san=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
if [ -n "$san" ]; then
  for t in test_ops_forward test_ops_backward test_mappers; do
    timeout 150 "${ours[@]}" "$san" --tool memcheck --error-exitcode 3 "$pack/bin/$t" >"$out/memcheck_$t.log" 2>&1
    step "memcheck $t" $?
  done
else
  echo "compute-sanitizer not found: memcheck skipped" | tee -a "$summary"
fi

# 4. the ViT-B/32 benchmark (bench_clip.py writes the PRNG model, the
# images and the CPU-torch reference; its CPU timing is one pass)
B="${BENCH_BATCH:-128}"
mkdir -p "$out/bench"
if python3 -c "import torch, numpy; assert torch.cuda.is_available()" >"$out/bench/python.txt" 2>&1; then
  timeout 240 python3 bench/bench_clip.py "$out/bench" "$B" 1 "$(nproc)" >"$out/bench/torch_cpu.txt" 2>&1
  step "bench: torch CPU + model files" $?
  timeout 120 python3 bench/bench_clip_gpu.py "$out/bench" 20 >"$out/bench/torch_gpu.txt" 2>&1
  step "bench: torch GPU" $?
  timeout 120 "${ours[@]}" "$pack/bin/bench_clip" "$out/bench" 20 1 >"$out/bench/clipcap_cuda.txt" 2>&1
  step "bench: clipcap CUDA (checks vs torch)" $?
  rm -f "$out/bench/clip_b32/model.safetensors" "$out/bench/images.npy" # 350 MB: do not ship back
  for f in torch_cpu torch_gpu clipcap_cuda; do tail -n 3 "$out/bench/$f.txt"; done | tee "$out/bench/summary.txt"
  tc=$(grep -o 'images/s: [0-9.]*' "$out/bench/clipcap_cuda.txt" | cut -d' ' -f2)
  tg=$(grep -o 'images/s: [0-9.]*' "$out/bench/torch_gpu.txt" | cut -d' ' -f2)
  [ -n "$tc" ] && [ -n "$tg" ] && awk -v c="$tc" -v t="$tg" 'BEGIN { printf "ratio clipcap-CUDA/torch-GPU: %.2fx\n", c / t }' |
    tee -a "$out/bench/summary.txt" "$summary"
else
  echo "python3 with CUDA torch not available: benchmark skipped (see bench/python.txt)" | tee -a "$summary"
fi

# 5. caption decoding. bench_caption decodes the N_GREEDY / N_BEAM prefixes
# alone (its c_greedy.txt / c_beam.txt, compared with torch's), then
# GREPEAT / BREPEAT copies of each batched (exit 1 if a copy decodes
# differently from its original alone).
cap="$out/caption"
mkdir -p "$cap"
if python3 -c "import torch; assert torch.cuda.is_available()" >/dev/null 2>&1; then
  timeout 180 python3 bench/bench_caption.py "$cap" 4 2 4 cuda >"$cap/torch_gpu.txt" 2>&1
  step "caption: torch GPU + model files" $?
  timeout 120 "${ours[@]}" "$pack/bin/bench_caption" "$cap" 1 4 2 64 16 128 80 >"$cap/clipcap_cuda.txt" 2>&1
  step "caption: clipcap CUDA (batched = alone)" $?
  agree() { # FILE_A FILE_B -> "same/total"
    paste -d'|' "$1" "$2" | awk -F'|' '{ n++; s += ($1 == $2) } END { printf "%d/%d", s, n }'
  }
  ga=$(agree "$cap/c_greedy.txt" "$cap/torch_greedy.txt") ba=$(agree "$cap/c_beam.txt" "$cap/torch_beam.txt")
  echo "caption token ids equal to torch-GPU's: greedy $ga captions, beam $ba beams" | tee -a "$summary"
  [ "${ga%/*}" = "${ga#*/}" ] && [ "${ba%/*}" = "${ba#*/}" ] && [ "${ga#*/}" != 0 ]
  step "caption: token ids equal torch-GPU" $?
  rm -f "$cap/gpt2_124m/model.safetensors" # 500 MB: do not ship back
  rate() { grep -F "$1" "$2" | sed -n 's/.*captions\/s: \([0-9.]*\).*/\1/p'; }
  awk -v tg="$(rate "greedy" "$cap/torch_gpu.txt")" -v tb="$(rate "beam5" "$cap/torch_gpu.txt")" \
      -v g1="$(rate "greedy one at a time" "$cap/clipcap_cuda.txt")" -v gb="$(rate "greedy batched" "$cap/clipcap_cuda.txt")" \
      -v b1="$(rate "beam5 one at a time" "$cap/clipcap_cuda.txt")" -v bb="$(rate "beam5 batched" "$cap/clipcap_cuda.txt")" 'BEGIN {
    if (tg <= 0 || tb <= 0) { print "caption ratios: missing rates"; exit }
    printf "caption captions/s torch-GPU greedy %.2f beam5 %.2f; clipcap-CUDA greedy batched %.2f (%.1fx) alone %.2f (%.1fx), beam5 batched %.2f (%.1fx) alone %.2f (%.1fx)\n",
           tg, tb, gb, gb / tg, g1, g1 / tg, bb, bb / tb, b1, b1 / tb }' | tee -a "$summary"
else
  echo "python3 with CUDA torch not available: caption benchmark skipped" | tee -a "$summary"
fi

echo "total seconds: $(( $(date +%s) - t_start ))" | tee -a "$summary"
exit $failed
