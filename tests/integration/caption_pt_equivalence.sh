#!/usr/bin/env bash
# The paper's .pt checkpoints and ours in safetensors caption alike through
# the CLI (fixtures: tests/gen/gen_caption_fixtures.py, the same weights in
# both formats):
#  - MLP + tuned GPT-2: mlp_tuned.pt (reference key order, gpt.* with
#    attn.bias/masked_bias buffers, gpt.lm_head.weight sharing wte's storage)
#    and mlp_tuned.safetensors (`clipcap train`'s names) print the same bytes,
#    greedy and with --beam 3 --num-captions 2, and log one fingerprint;
#  - Transformer, frozen GPT-2: tf_frozen.pt, tf_frozen.safetensors (GPT-2
#    from the hub directory) and tf_withgpt.pt (GPT-2 inside, as the
#    published checkpoint) print the same bytes and log one fingerprint;
#  - the two models caption differently (the comparison can fail).
# That these tokens are the PyTorch reference's is unit.captioner's check.
. "$CLIPCAP_SOURCE/tests/integration/extract_lib.bash"
fx="$CLIPCAP_FIXTURES"
export OMP_NUM_THREADS=1

caption_gpt2_dir "$WORK/gpt2"
make_store "$WORK" 6

run() { # NAME CKPT args...
    local name=$1 ckpt=$2; shift 2
    "$CLIPCAP" caption --model "$fx/caption/$ckpt" --gpt2 "$WORK/gpt2" --store "$WORK/store" "$@" \
        >"$WORK/$name.jsonl" 2>"$WORK/$name.log" || fail "caption $ckpt $*: $(cat "$WORK/$name.log")"
    [ -s "$WORK/$name.jsonl" ] || fail "caption $ckpt: no output"
    grep -o 'fingerprint [0-9a-f]*' "$WORK/$name.log" >"$WORK/$name.fp" || fail "$ckpt: no fingerprint logged"
}
same() { # A B
    cmp "$WORK/$1.jsonl" "$WORK/$2.jsonl" || fail "$1 and $2 caption differently"
    cmp "$WORK/$1.fp" "$WORK/$2.fp" || fail "$1 and $2 have different fingerprints"
}

run mlp_pt mlp_tuned.pt
run mlp_st mlp_tuned.safetensors
same mlp_pt mlp_st
grep -q 'GPT-2 from .*mlp_tuned.pt' "$WORK/mlp_pt.log" || fail "tuned GPT-2 not read from the checkpoint"
run mlp_pt_beam mlp_tuned.pt --beam 3 --num-captions 2
run mlp_st_beam mlp_tuned.safetensors --beam 3 --num-captions 2
same mlp_pt_beam mlp_st_beam

run tf_pt tf_frozen.pt
run tf_st tf_frozen.safetensors
run tf_gpt tf_withgpt.pt
same tf_pt tf_st
same tf_pt tf_gpt
grep -q 'GPT-2 from .*/gpt2/model.safetensors' "$WORK/tf_pt.log" || fail "frozen GPT-2 not read from the hub directory"

if cmp -s "$WORK/mlp_pt.jsonl" "$WORK/tf_pt.jsonl"; then fail "MLP and Transformer models gave the same captions"; fi
echo "caption_pt_equivalence: ok ($(wc -l <"$WORK/mlp_pt.jsonl") images, 2 models)"
