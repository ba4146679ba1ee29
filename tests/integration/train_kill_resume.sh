#!/usr/bin/env bash
# `clipcap train` killed with SIGKILL and resumed gives the uninterrupted
# run, bit for bit (same rank and thread count):
#  - a reference run trains 24 steps (two epochs), checkpointing after
#    every step (so a
#    large share of the run is spent writing checkpoints and a kill often
#    lands in the middle of one);
#  - a second run is killed -9 three times at random steps (each after at
#    least one checkpoint, as state.json shows) and resumed with --resume
#    after each kill, then resumed to the end;
#  - every loss any segment logged equals the reference's loss at that step
#    (printed with 17 significant digits: the exact double), and log.jsonl
#    holds each step once with the reference's loss (a resume drops the
#    lines logged after the checkpoint);
#  - the final weights and optimiser moments are byte-identical (cmp);
#  - a kill during a checkpoint write leaves the previous checkpoint usable:
#    files are written to NAME.tmp.PID and renamed, state.json (written the
#    same way, last) is the commit point. Every kill is followed by a
#    resume from whatever state.json names, so a torn checkpoint would fail
#    the resume or the comparison; the test also plants a torn checkpoint
#    (truncated files of a step that state.json does not name, and stale
#    temp files) and resumes past it.
. "$CLIPCAP_SOURCE/tests/integration/lib.bash"
fx="$CLIPCAP_FIXTURES"
pid=""
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=1

"$CLIPCAP" synth --out "$tmp/syn" --count 24 >/dev/null 2>"$tmp/synth.log"
train_data "$tmp"

N=24
args=(train --manifest "$tmp/man" --store "$tmp/store" --gpt2 "$fx/train/gpt2_fullvocab" --batch 6 --epochs 2
      --lr 1e-2 --warmup 2 --prefix-len 4 --seed 7 --mapping mlp --max-steps "$N" --save-every 1)
final=model-step-$(printf '%08d' "$N").safetensors
optim=optim-step-$(printf '%08d' "$N").safetensors

t0=$(date +%s%N)
"$CLIPCAP" "${args[@]}" --out "$tmp/ref" >"$tmp/ref.stdout" 2>"$tmp/ref.log" || { cat "$tmp/ref.log"; exit 1; }
step_ms=$(( ($(date +%s%N) - t0) / 1000000 / N + 1 ))
[ "$(wc -l <"$tmp/ref.stdout")" -eq "$N" ]

# "step loss" per line; a torn last line (killed mid-write) is not a step
step_loss() { sed -n 's/^{"step": \([0-9]*\), "epoch": [0-9]*, "loss": \([^,]*\),.*}$/\1 \2/p' "$@"; }
step_loss "$tmp/ref.stdout" >"$tmp/ref.losses"

state_step() { sed -n 's/.*"step": \([0-9]*\).*/\1/p' "$1/state.json" 2>/dev/null || true; }

run="$tmp/run"
resume=()
seg=0
torn=0
for target in $(( 2 + RANDOM % 4 )) $(( 9 + RANDOM % 4 )) $(( 16 + RANDOM % 4 )); do
  seg=$((seg + 1))
  "$CLIPCAP" "${args[@]}" --out "$run" "${resume[@]}" >"$tmp/seg$seg.stdout" 2>"$tmp/seg$seg.log" &
  pid=$!
  # kill once a checkpoint is committed and `target` steps are logged,
  # after a random delay within one step (measured on the reference run,
  # checkpoint included) so the kill lands anywhere in a step
  while kill -0 "$pid" 2>/dev/null; do
    s=$(state_step "$run")
    if [ -n "$s" ] && [ "$(step_loss "$tmp/seg$seg.stdout" | tail -1 | cut -d' ' -f1)" -ge "$target" ] 2>/dev/null; then
      d=$((RANDOM % step_ms))
      sleep "$((d / 1000)).$(printf '%03d' $((d % 1000)))"
      kill -9 "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.01
  done
  set +e; wait "$pid"; rc=$?; set -e
  pid=""
  [ "$rc" -eq 137 ] || { echo "train_kill_resume: segment $seg was not killed (exit $rc)"; cat "$tmp/seg$seg.log"; exit 1; }
  ls "$run" | grep -q '\.tmp\.' && torn=$((torn + 1))
  echo "train_kill_resume: segment $seg killed after step $(step_loss "$tmp/seg$seg.stdout" | tail -1 | cut -d' ' -f1), checkpoint at step $(state_step "$run")"
  resume=(--resume)
done

# a torn checkpoint a kill could leave behind: a later step's files cut
# short (never named by state.json) and stale temp files
s=$(state_step "$run")
next=$(printf '%08d' $((s + 1)))
head -c 100 "$tmp/ref/$final" >"$run/model-step-$next.safetensors.tmp.999999"
head -c 50 "$tmp/ref/$optim" >"$run/state.json.tmp.999998"

"$CLIPCAP" "${args[@]}" --out "$run" --resume >"$tmp/last.stdout" 2>"$tmp/last.log" || { cat "$tmp/last.log"; exit 1; }
grep -q "resuming .* at step $s " "$tmp/last.log"

cmp "$tmp/ref/$final" "$run/$final"
cmp "$tmp/ref/$optim" "$run/$optim"
# every logged step's loss equals the reference's, bit for bit
step_loss "$tmp"/seg*.stdout "$tmp/last.stdout" >"$tmp/all.losses"
awk 'NR == FNR { ref[$1] = $2; next }
     { seen[$1] = 1; if ($2 != ref[$1]) { print "train_kill_resume: step " $1 ": " $2 " vs " ref[$1]; bad = 1 } }
     END { n = 0; for (s in seen) n++; if (n != '"$N"') { print "train_kill_resume: " n " steps logged"; bad = 1 }; exit bad }' \
  "$tmp/ref.losses" "$tmp/all.losses"
# the resumed segments really ran the steps after their checkpoints
[ "$(step_loss "$tmp/last.stdout" | head -1 | cut -d' ' -f1)" -eq $((s + 1)) ]
# log.jsonl: each step once, the reference's losses
cmp <(step_loss "$run/log.jsonl") "$tmp/ref.losses"
echo "train_kill_resume: ok ($seg kills; $torn of them left the temp files of a checkpoint in progress)"
