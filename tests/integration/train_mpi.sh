#!/usr/bin/env bash
# `clipcap train` end to end on a tiny pipeline: `synth` → `shard` (GPT-2
# tokenizer) → `extract` (tiny CLIP) → `train` with a tiny GPT-2 that has
# the real 50257-token vocabulary (tests/fixtures/train/gpt2_fullvocab).
#  - one rank and `mpirun -np 2` (global batch split 3 + 3, gradients summed
#    by one allreduce) log the same losses per step: 1e-4 relative (fp32
#    gradient sums in another order, amplified by a few Adam steps);
#  - a run stopped at step 3 and resumed to step 6 writes checkpoints and
#    optimiser state byte-identical to a straight 6-step run;
#  - the loss goes down with a large learning rate;
#  - MLP + tuned GPT-2 checkpoints hold clip_project.* and gpt.transformer.*
#    (+ gpt.lm_head.weight); Transformer + --freeze-gpt2 ones hold
#    clip_project.* only;
#  - resuming with different flags is refused.
. "$CLIPCAP_SOURCE/tests/integration/lib.bash"
fx="$CLIPCAP_FIXTURES"
export OMP_NUM_THREADS=1

"$CLIPCAP" synth --out "$tmp/syn" --count 24 >/dev/null 2>"$tmp/synth.log"
train_data "$tmp"

gpt2="$fx/train/gpt2_fullvocab"
common=(--manifest "$tmp/man" --store "$tmp/store" --gpt2 "$gpt2" --batch 6 --epochs 2 --lr 1e-2 --warmup 2
        --prefix-len 4 --seed 7 --check-every 2)

train() { # RANKS OUT args...
  local ranks=$1 out=$2; shift 2
  on_ranks "$ranks" "$CLIPCAP" train "${common[@]}" --out "$out" "$@" >"$out.stdout" 2>"$out.log" || {
    echo "train $out ($ranks ranks) failed:"; cat "$out.log"; exit 1; }
}

"$CLIPCAP" train --help >"$tmp/help.txt" # not piped into grep -q, which may end it with SIGPIPE
grep -q -- '--freeze-gpt2' "$tmp/help.txt"

# np 1 vs np 2, and a straight run vs stop + resume
train 1 "$tmp/np1" --mapping mlp --max-steps 6 --save-every 3
train 2 "$tmp/np2" --mapping mlp --max-steps 6 --save-every 3
train 1 "$tmp/res" --mapping mlp --max-steps 3 --save-every 3
train 1 "$tmp/res" --mapping mlp --max-steps 6 --save-every 3 --resume

[ "$(wc -l < "$tmp/np1.stdout")" -eq 6 ]
[ "$(wc -l < "$tmp/np2.stdout")" -eq 6 ]   # rank 0 alone logs
losses() { sed -e 's/.*"loss": \([^,]*\),.*/\1/' "$1"; }
paste <(losses "$tmp/np1.stdout") <(losses "$tmp/np2.stdout") |
  awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > 1e-4 * $1) { print "train: np1 vs np2 step " NR ": " $1 " vs " $2; bad = 1 } }
       END { exit bad }'
awk 'NR == 1 { first = $0 } END { if (!($0 < first)) { print "train: loss did not go down: " first " -> " $0; exit 1 } }' \
  <(losses "$tmp/np1.stdout")

for f in model-step-00000006.safetensors optim-step-00000006.safetensors model-step-00000003.safetensors; do
  cmp "$tmp/np1/$f" "$tmp/res/$f"
done
cmp <(losses "$tmp/np1.stdout" | tail -3) <(losses "$tmp/res.stdout")
grep -q '"step": 6' "$tmp/res/state.json"

names() { /usr/bin/env python3 -c '
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    h = json.loads(f.read(n))
print("\n".join(sorted(k for k in h if k != "__metadata__")))' "$1"; }
names "$tmp/np1/model-step-00000006.safetensors" > "$tmp/mlp.names"
grep -qx 'clip_project.model.0.weight' "$tmp/mlp.names"
grep -qx 'gpt.transformer.h.0.attn.c_attn.weight' "$tmp/mlp.names"
grep -qx 'gpt.lm_head.weight' "$tmp/mlp.names"

# Transformer mapper, frozen GPT-2, 2 ranks
train 2 "$tmp/tf" --mapping transformer --freeze-gpt2 --clip-len 3 --mapper-layers 2 --max-steps 3
names "$tmp/tf/model-step-00000003.safetensors" > "$tmp/tf.names"
grep -qx 'clip_project.prefix_const' "$tmp/tf.names"
grep -qx 'clip_project.transformer.layers.1.attn.to_keys_values.weight' "$tmp/tf.names"
if grep -q '^gpt\.' "$tmp/tf.names"; then echo "FAIL: a frozen-GPT-2 checkpoint holds gpt.* tensors" >&2; exit 1; fi

# resuming with other flags is refused, naming what differs
set +e
"$CLIPCAP" train "${common[@]}" --out "$tmp/res" --mapping mlp --prefix-len 5 --resume >/dev/null 2>"$tmp/bad.log"
rc=$?
set -e
[ "$rc" -ne 0 ]
grep -q 'prefix_len' "$tmp/bad.log"
echo "train_mpi: ok"
