#!/usr/bin/env bash
# One ClipCap training step on the CPU (forward, loss, backward, AdamW;
# fp32 and bf16; GPT-2 small, CLIP dim 512, random weights) for the paper's two
# configurations, clipcap against the same model in plain PyTorch (what a
# user of the reference code runs), same shapes, same batch, same threads:
#   mlp          MLP mapper (k = 10) + GPT-2 tuned            T = 10 + LEN
#   transformer  Transformer mapper (k = 40, clip_length 40,  T = 40 + LEN
#                8 layers) + GPT-2 frozen; PyTorch as the reference freezes
#                (GPT-2 weight gradients computed, then discarded) and, with
#                TORCH_NOGRAD=1, also with GPT-2's requires_grad off
# bf16: clipcap --precision bf16 (bf16 GEMMs, float32 master weights,
# optimiser and loss), PyTorch under torch.autocast("cpu", bfloat16). Both
# precisions run with this environment's OpenBLAS settings (the workplace
# pins OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE) and with both unset, as on
# users' machines (for the benchmark commands only): 16 processes.
# Each run is its own process: one warm-up step, STEPS timed; the peak
# resident memory of the process (/usr/bin/time's maximum RSS) beside it.
# Prints s/step, the ratio torch/clipcap (> 1: clipcap is faster) and the
# memory of both. Takes ~2 minutes at the defaults on 2 quiet cores (four
# processes of two steps each); a loaded machine stretches that several
# times and skews the ratio (see docs/training.md).
#
#   bench/bench_train.sh [THREADS] [BATCH] [LEN] [STEPS]   (default 2 40 20 1)
#   BUILD=path/to/build-dir   (default build; needs libclipcap_common.a there)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.bash
threads="${1:-2}"; batch="${2:-40}"; len="${3:-20}"; steps="${4:-1}"
build="${BUILD:-build}"
out=bench/out/train
bench_build_c "$build" bench/bench_train.c "$out/bench_train"

export OMP_NUM_THREADS="$threads"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
run() { # NAME command... -> prints its line, records s/step and max RSS (MiB)
  local name=$1; shift
  /usr/bin/time -f "%M" -o "$out/$name.rss" "$@" >"$out/$name.txt"
  cat "$out/$name.txt"
  sec[$name]=$(sed -n 's/.*s\/step: \([0-9.]*\).*/\1/p' "$out/$name.txt")
  rss[$name]=$(( $(tail -1 "$out/$name.rss") / 1024 ))
}
declare -A sec rss
echo "OpenBLAS pin here: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-unset}"
for pin in pinned unpinned; do
  e=(env)
  [ "$pin" = unpinned ] && e=(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)
  for prec in fp32 bf16; do
    run "c_mlp_${pin}_$prec" "${e[@]}" "$out/bench_train" mlp "$batch" "$len" "$threads" "$steps" "$prec"
    run "t_mlp_${pin}_$prec" "${e[@]}" /usr/bin/python3 bench/bench_train.py mlp "$batch" "$len" "$threads" "$steps" "$prec"
    run "c_tf_${pin}_$prec" "${e[@]}" "$out/bench_train" transformer "$batch" "$len" "$threads" "$steps" "$prec"
    run "t_tf_${pin}_$prec" "${e[@]}" /usr/bin/python3 bench/bench_train.py transformer "$batch" "$len" "$threads" "$steps" "$prec"
  done
done
[ "${TORCH_NOGRAD:-0}" = 1 ] && run t_tfng /usr/bin/python3 bench/bench_train.py transformer-nograd "$batch" "$len" "$threads" "$steps"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

row() { # LABEL CLIPCAP TORCH
  awk -v l="$1" -v c="${sec[$2]}" -v t="${sec[$3]}" -v cm="${rss[$2]}" -v tm="${rss[$3]}" \
    'BEGIN { printf "%-50s clipcap %7.2f s %6d MiB | torch %7.2f s %6d MiB | speed-up %.2fx, memory %.2fx\n",
             l, c, cm, t, tm, t / c, tm / cm }'
}
echo "batch $batch, caption length $len, $threads threads (s/step, peak RSS):"
for pin in pinned unpinned; do for prec in fp32 bf16; do
  row "MLP k=10 + GPT-2 tuned, $prec, OpenBLAS $pin" "c_mlp_${pin}_$prec" "t_mlp_${pin}_$prec"
  row "Transformer k=40 + GPT-2 frozen, $prec, $pin" "c_tf_${pin}_$prec" "t_tf_${pin}_$prec"
done; done
[ "${TORCH_NOGRAD:-0}" = 1 ] && row "Transformer, torch fp32 with requires_grad off" c_tf_pinned_fp32 t_tfng
for v in mlp tf; do
  awk -v v="$v" -v a="${sec[c_${v}_pinned_fp32]}" -v b="${sec[c_${v}_pinned_bf16]}" -v u="${sec[c_${v}_unpinned_bf16]}" \
    'BEGIN { printf "clipcap %s: bf16 step %.2fx faster than pinned fp32 (unpinned bf16: %.2fx)\n", v, a / b, a / u }'
done
exit 0
