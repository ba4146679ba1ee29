#!/usr/bin/env bash
# `clipcap train`'s guards and the paper's training options (issue 13 items
# 3, 8; issue 12 item 4), on the tiny pipeline of train_mpi.sh:
#  - non-finite weights are refused at load, naming file and tensor (a NaN
#    GPT-2 weight; a NaN CLIP projection in `embed`); an integer tensor too;
#  - a loss that turns non-finite (ln_f gain 3e38, so the logits overflow)
#    stops training at step 1 with a clear error: exit 1, no checkpoint,
#    no step in log.jsonl, nothing non-JSON printed;
#  - a used run folder is refused without --resume (nothing changes in it);
#    --force starts over (the old checkpoints and log lines are gone);
#  - dropout: on by default when GPT-2 is tuned (config.json without
#    *_pdrop keys = 0.1), a run stopped and resumed with --dropout 0.3 is
#    byte-identical to a straight one and differs from --dropout 0; a frozen
#    GPT-2 ignores --dropout (eval mode: byte-identical to --dropout 0);
#  - --normalize-prefix: a store whose embeddings are exactly 2x another's
#    (a CLIP with its projection doubled) trains to the same tensors;
#  - --max-seq-len beyond GPT-2's positions is capped there with a note;
#  - --keep-checkpoints 2 leaves the last two model + optimiser files and a
#    resumable run;
#  - a store mixing two CLIPs' embeddings is refused naming both; the
#    checkpoint records the store's CLIP fingerprint, and caption refuses
#    embeddings of another CLIP (--store, or --images with --clip) unless
#    --any-clip.
. "$CLIPCAP_SOURCE/tests/integration/lib.bash"
fx="$CLIPCAP_FIXTURES"
export OMP_NUM_THREADS=1
fail() { echo "train_guards: $*"; exit 1; }

# st_edit SRC_DIR DST_DIR TENSOR MODE: a copy of a hub directory whose
# model.safetensors has TENSOR replaced (nan: all NaN as F32; big: all 3e38
# as F32; double: the F32 values times 2, exact; i32: zeros as I32).
st_edit() {
  mkdir -p "$2"
  cp "$1/config.json" "$2/"
  python3 - "$1/model.safetensors" "$2/model.safetensors" "$3" "$4" <<'PY'
import array, json, struct, sys
src, dst, name, mode = sys.argv[1:]
raw = open(src, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + n])
data = raw[8 + n:]
meta = hdr.pop("__metadata__", None)
out, blobs, off = {}, [], 0
for k, v in hdr.items():
    b, e = v["data_offsets"]
    blob, dt = data[b:e], v["dtype"]
    if k == name:
        cnt = 1
        for s in v["shape"]:
            cnt *= s
        if mode == "double":
            a = array.array("f", blob)
            blob = array.array("f", [2.0 * x for x in a]).tobytes()
        elif mode == "i32":
            blob, dt = bytes(4 * cnt), "I32"
        else:
            blob, dt = array.array("f", [float("nan") if mode == "nan" else 3e38] * cnt).tobytes(), "F32"
    out[k] = {"dtype": dt, "shape": v["shape"], "data_offsets": [off, off + len(blob)]}
    blobs.append(blob)
    off += len(blob)
if meta:
    out["__metadata__"] = meta
h = json.dumps(out).encode()
h += b" " * (-len(h) % 8)
open(dst, "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
PY
}
# tensors NAME.safetensors: "name sha" per tensor (metadata left out)
tensors() {
  python3 - "$1" <<'PY'
import hashlib, json, struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + n])
for k in sorted(h):
    if k != "__metadata__":
        b, e = h[k]["data_offsets"]
        print(k, hashlib.sha256(raw[8 + n + b:8 + n + e]).hexdigest())
PY
}
meta() { # FILE KEY
  python3 -c 'import json, struct, sys
raw = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
print(json.loads(raw[8:8 + n])["__metadata__"][sys.argv[2]])' "$1" "$2"
}
expect_fail() { # NAME NEEDLE CMD...: non-zero exit, NEEDLE in the error line
  local name=$1 needle=$2
  shift 2
  if "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"; then fail "$name: succeeded"; fi
  grep -qF -- "$needle" "$tmp/$name.err" || { cat "$tmp/$name.err"; fail "$name: no '$needle' in the error"; }
}

"$CLIPCAP" synth --out "$tmp/syn" --count 24 >/dev/null 2>"$tmp/synth.log"
train_data "$tmp"
gpt2="$fx/train/gpt2_fullvocab"
common=(--manifest "$tmp/man" --store "$tmp/store" --batch 6 --lr 1e-2 --warmup 2 --prefix-len 4 --seed 7
        --mapping mlp)
train() { # OUT args...
  local out=$1
  shift
  "$CLIPCAP" train "${common[@]}" --out "$out" "$@" >"$out.stdout" 2>"$out.log" || {
    echo "train $out failed:"; cat "$out.log"; exit 1; }
}

# 1. non-finite and integer weights, refused at load
st_edit "$gpt2" "$tmp/g_nan" transformer.h.0.mlp.c_fc.weight nan
expect_fail gpt2_nan "model.safetensors: tensor 'transformer.h.0.mlp.c_fc.weight': 256 non-finite values (first at index 0)" \
  "$CLIPCAP" train "${common[@]}" --gpt2 "$tmp/g_nan" --out "$tmp/r_nan" --max-steps 1
st_edit "$gpt2" "$tmp/g_int" transformer.h.0.ln_1.bias i32
expect_fail gpt2_int "tensor 'transformer.h.0.ln_1.bias': dtype I32 is not a float type" \
  "$CLIPCAP" train "${common[@]}" --gpt2 "$tmp/g_int" --out "$tmp/r_int" --max-steps 1
st_edit "$fx/clip/tiny" "$tmp/clip_nan" visual_projection.weight nan
img=$(find "$tmp/syn/coco" -name '*.jpg' | head -1)
expect_fail clip_nan "tensor 'visual_projection.weight': 512 non-finite values (first at index 0)" \
  "$CLIPCAP" embed --clip "$tmp/clip_nan" "$img"
grep -q '"embedding"' "$tmp/clip_nan.out" && fail "embed printed an embedding from a NaN CLIP"

# 2. a loss that overflows stops training before any update
st_edit "$gpt2" "$tmp/g_big" transformer.ln_f.weight big
expect_fail loss_inf "step 1: the loss is" \
  "$CLIPCAP" train "${common[@]}" --gpt2 "$tmp/g_big" --out "$tmp/r_big" --max-steps 2
ls "$tmp/r_big"/model-step-* >/dev/null 2>&1 && fail "a checkpoint was written after a non-finite loss"
[ ! -s "$tmp/r_big/log.jsonl" ] || fail "log.jsonl holds a step of a non-finite loss"
grep -qi 'nan\|inf' "$tmp/loss_inf.out" && fail "non-JSON number printed"

# 3. a used run folder
train "$tmp/A" --gpt2 "$gpt2" --max-steps 3 --save-every 1
grep -q 'GPT-2 dropout: attn 0.1, resid 0.1, embd 0.1' "$tmp/A.log" || fail "dropout not on by default"
ls -l --time-style=+%s.%N "$tmp/A" >"$tmp/A.before"
expect_fail used "not empty" "$CLIPCAP" train "${common[@]}" --gpt2 "$gpt2" --out "$tmp/A" --max-steps 2
ls -l --time-style=+%s.%N "$tmp/A" | cmp - "$tmp/A.before" || fail "a refused run changed the folder"
train "$tmp/A" --gpt2 "$gpt2" --max-steps 2 --force
[ "$(grep -c '"step"' "$tmp/A/log.jsonl")" -eq 2 ] || fail "--force kept the old log"
[ ! -e "$tmp/A/model-step-00000003.safetensors" ] || fail "--force kept the old step-3 checkpoint"
grep -q '"step": 2' "$tmp/A/state.json"

# 4. dropout: resume bit-exact, 0 differs, frozen ignores it
train "$tmp/D" --gpt2 "$gpt2" --max-steps 4 --save-every 2 --dropout 0.3
train "$tmp/Dr" --gpt2 "$gpt2" --max-steps 2 --save-every 2 --dropout 0.3
train "$tmp/Dr" --gpt2 "$gpt2" --max-steps 4 --save-every 2 --dropout 0.3 --resume
cmp "$tmp/D/model-step-00000004.safetensors" "$tmp/Dr/model-step-00000004.safetensors"
cmp "$tmp/D/optim-step-00000004.safetensors" "$tmp/Dr/optim-step-00000004.safetensors"
train "$tmp/D0" --gpt2 "$gpt2" --max-steps 4 --save-every 2 --dropout 0
tensors "$tmp/D0/model-step-00000004.safetensors" | cmp -s - <(tensors "$tmp/D/model-step-00000004.safetensors") &&
  fail "--dropout 0.3 trained the same weights as --dropout 0"
train "$tmp/F0" --gpt2 "$gpt2" --max-steps 2 --freeze-gpt2 --dropout 0
train "$tmp/F5" --gpt2 "$gpt2" --max-steps 2 --freeze-gpt2 --dropout 0.5
cmp <(tensors "$tmp/F0/model-step-00000002.safetensors") <(tensors "$tmp/F5/model-step-00000002.safetensors")

# 5. --normalize-prefix: embeddings scaled by 2 train alike
st_edit "$fx/clip/tiny" "$tmp/clip2" visual_projection.weight double
"$CLIPCAP" extract --manifest "$tmp/man" --clip "$tmp/clip2" --store "$tmp/store2" >/dev/null 2>"$tmp/extract2.log"
train "$tmp/N1" --gpt2 "$gpt2" --max-steps 2 --normalize-prefix
"$CLIPCAP" train "${common[@]}" --store "$tmp/store2" --gpt2 "$gpt2" --max-steps 2 --normalize-prefix \
  --out "$tmp/N2" >"$tmp/N2.stdout" 2>"$tmp/N2.log" || { cat "$tmp/N2.log"; fail "N2"; }
cmp <(tensors "$tmp/N1/model-step-00000002.safetensors") <(tensors "$tmp/N2/model-step-00000002.safetensors")
[ "$(meta "$tmp/N1/model-step-00000002.safetensors" normalize_prefix)" = true ]
"$CLIPCAP" train "${common[@]}" --store "$tmp/store2" --gpt2 "$gpt2" --max-steps 2 \
  --out "$tmp/N3" >"$tmp/N3.stdout" 2>"$tmp/N3.log" || { cat "$tmp/N3.log"; fail "N3"; }
tensors "$tmp/N3/model-step-00000002.safetensors" | cmp -s - <(tensors "$tmp/N1/model-step-00000002.safetensors") &&
  fail "the doubled store trained the same weights without --normalize-prefix"

# 6. --max-seq-len past GPT-2's 64 positions (prefix 4): capped at 60
train "$tmp/M" --gpt2 "$gpt2" --max-steps 1 --max-seq-len 100000
grep -q 'max_seq_len 100000 (--max-seq-len) + prefix 4 exceeds GPT-2.s 64 positions: captions cut to 60 tokens' \
  "$tmp/M.log" || { cat "$tmp/M.log"; fail "no note of the cap"; }
grep -q '"max_seq_len": 60' "$tmp/M/state.json"

# 7. --keep-checkpoints 2
train "$tmp/K" --gpt2 "$gpt2" --max-steps 3 --save-every 1 --keep-checkpoints 2
[ "$(cd "$tmp/K" && ls model-step-* optim-step-* | tr '\n' ' ')" = \
  "model-step-00000002.safetensors model-step-00000003.safetensors optim-step-00000002.safetensors optim-step-00000003.safetensors " ] ||
  { ls "$tmp/K"; fail "--keep-checkpoints 2 kept other files"; }
train "$tmp/K" --gpt2 "$gpt2" --max-steps 4 --save-every 1 --keep-checkpoints 2 --resume
[ -e "$tmp/K/model-step-00000004.safetensors" ] && [ ! -e "$tmp/K/model-step-00000002.safetensors" ]

# 8. one CLIP per store: the checkpoint records it; a mixed store is refused
fp=$(meta "$tmp/N1/model-step-00000002.safetensors" clip_fingerprint)
[ "${#fp}" -eq 32 ] || fail "no CLIP fingerprint in the checkpoint: '$fp'"
# caption and eval compare it with the embeddings they are given
mkdir -p "$tmp/gpt2cap"
cp "$gpt2/config.json" "$gpt2/model.safetensors" "$fx/gpt2/vocab.json" "$fx/gpt2/merges.txt" "$tmp/gpt2cap/"
ckpt="$tmp/N1/model-step-00000002.safetensors"
cap=("$CLIPCAP" caption --model "$ckpt" --gpt2 "$tmp/gpt2cap" --normalize-prefix --max-tokens 3)
"${cap[@]}" --store "$tmp/store" >"$tmp/cap_ok.out" 2>"$tmp/cap_ok.err" || { cat "$tmp/cap_ok.err"; fail "caption"; }
expect_fail cap_clip "CLIP fingerprint" "${cap[@]}" --store "$tmp/store2"
# the checkpoint's normalize_prefix decides: without the flag the captions
# are the same; with it on a model trained without it, a refusal
"$CLIPCAP" caption --model "$ckpt" --gpt2 "$tmp/gpt2cap" --max-tokens 3 --store "$tmp/store" >"$tmp/cap_meta.out" \
  2>"$tmp/cap_meta.err" || { cat "$tmp/cap_meta.err"; fail "caption without --normalize-prefix"; }
cmp "$tmp/cap_ok.out" "$tmp/cap_meta.out" || fail "caption did not follow the checkpoint's normalize_prefix"
grep -q "trained with --normalize-prefix" "$tmp/cap_meta.err" || fail "no note that the checkpoint's setting was followed"
expect_fail cap_norm "trained without it" "$CLIPCAP" caption --model "$tmp/N3/model-step-00000002.safetensors" \
  --gpt2 "$tmp/gpt2cap" --max-tokens 3 --store "$tmp/store2" --normalize-prefix
grep -q "trained on embeddings of $fp" "$tmp/cap_clip.err" || fail "caption's error does not name $fp"
"${cap[@]}" --store "$tmp/store2" --any-clip >/dev/null 2>"$tmp/cap_any.err" || { cat "$tmp/cap_any.err"; fail "--any-clip"; }
expect_fail cap_images "CLIP fingerprint" "$CLIPCAP" caption --model "$ckpt" --gpt2 "$tmp/gpt2cap" --max-tokens 3 --images "$img" \
  --clip "$tmp/clip2"
python3 - "$tmp/syn/coco/annotations/captions_train2014.json" "$tmp/captions_train2014.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
keep = {img["id"] for img in d["images"][::2]}
d["images"] = [i for i in d["images"] if i["id"] in keep]
d["annotations"] = [a for a in d["annotations"] if a["image_id"] in keep]
json.dump(d, open(sys.argv[2], "w"))
PY
"$CLIPCAP" shard --gpt2 "$fx/gpt2" --shards 1 --out "$tmp/man_half" --format coco --input "$tmp/captions_train2014.json" \
  --images-root "$tmp/syn/coco" >/dev/null 2>"$tmp/shard_half.log" || { cat "$tmp/shard_half.log"; fail "shard"; }
"$CLIPCAP" extract --manifest "$tmp/man_half" --clip "$tmp/clip2" --store "$tmp/store" >/dev/null \
  2>"$tmp/extract_half.log" || { cat "$tmp/extract_half.log"; fail "extract"; }
expect_fail mixed "embeddings of more than one CLIP model" \
  "$CLIPCAP" train "${common[@]}" --gpt2 "$gpt2" --out "$tmp/X" --max-steps 1
echo "train_guards: ok"
