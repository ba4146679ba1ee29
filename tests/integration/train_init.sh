#!/usr/bin/env bash
# `clipcap train --init CKPT` and `--no-shuffle`.
#
# Data: `synth` images whose captions are rewritten to strings of
# alternating capitals and punctuation ("Q.X,B"), so that every character is
# its own GPT-2 token with an id below 64 (fits the 64-token GPT-2 of
# tests/fixtures/caption too) and captions have known, varied lengths; then
# `shard` (GPT-2 tokenizer) and `extract` (tiny CLIP, D = 16).
#  1. --init from a previous run's checkpoint: a run with --lr 0 (AdamW then
#     leaves every weight as it is, exactly) writes back the same tensors,
#     bit for bit: MLP + tuned GPT-2 (the checkpoint's GPT-2, not the --gpt2
#     dir's), the same with --freeze-gpt2 (GPT-2 still the checkpoint's, so
#     it is saved too, and a resume without --init continues byte-identically),
#     and a Transformer mapper-only checkpoint whose clip length and layers
#     are inferred (GPT-2 then from the --gpt2 dir).
#  2. --init from the paper-format .pt fixture (tests/gen/gen_caption_fixtures.py)
#     and its Transformer .pt: the written checkpoint equals the safetensors
#     that PyTorch wrote from the same state dict, bit for bit.
#  3. bad checkpoints and flags: non-zero exit, a one-line error naming the
#     file (and the tensor where one is at fault), nothing trained.
#  4. --no-shuffle: with batch 1 the per-step target-token counts are the
#     captions' lengths in manifest order, read from the manifest's shard
#     files by an independent reader here; with batch 5 on 2 ranks, two
#     epochs, each step counts the next 5 captions, the last partial batch
#     dropped, every epoch from the start; the shuffled run's order differs;
#     with --init and --dropout 0, two --no-shuffle runs with different seeds log identical
#     losses.
. "$CLIPCAP_SOURCE/tests/integration/lib.bash"
fx="$CLIPCAP_FIXTURES"
export OMP_NUM_THREADS=1
PY=python3
fail() { echo "train_init: $*"; exit 1; }

"$CLIPCAP" synth --out "$tmp/syn" --count 20 >/dev/null 2>"$tmp/synth.log"
$PY - "$tmp/syn/coco/annotations/captions_train2014.json" <<'EOF'
import json, random, sys
path = sys.argv[1]
d = json.load(open(path))
rnd = random.Random(4)
letters, punct = "ABCDEFGHIJKLMNOPQRSTUVWXYZ", ".,:;-"
anns, aid = [], 1
for img in d["images"]:
    for _ in range(rnd.randint(1, 3)):
        n = rnd.randint(2, 20)
        text = "".join(rnd.choice(letters) if i % 2 == 0 else rnd.choice(punct) for i in range(n))
        anns.append({"image_id": img["id"], "id": aid, "caption": text})
        aid += 1
if len(anns) % 5 == 0:  # keep a partial last batch of 5 to drop
    anns.pop()
d["annotations"] = anns
json.dump(d, open(path, "w"))
EOF
train_data "$tmp"

# Per caption in manifest order (shards in index order, records in file
# order, captions in record order): min(token count, max_seq_len), the
# targets the loss counts.
for f in $($PY -c 'import json, sys; print(" ".join(s["file"] for s in json.load(open(sys.argv[1]))["shards"]))' \
             "$tmp/man/index.json"); do
  zstd -dcq "$tmp/man/$f"
done > "$tmp/records.jsonl"
$PY - "$tmp/man/index.json" "$tmp/records.jsonl" > "$tmp/lengths" <<'EOF'
import json, sys
idx = json.load(open(sys.argv[1]))
L = idx["tokens"]["max_seq_len"]
assert idx["rejected"]["total"] == 0, idx["rejected"]
for line in open(sys.argv[2]):
    r = json.loads(line)
    if "key" not in r:
        continue  # a shard header
    for t in r["tokens"]:
        assert t and max(t) < 64, ("caption ids must fit a 64-token GPT-2", t)
        print(min(len(t), L))
EOF
n=$(wc -l < "$tmp/lengths")
[ "$n" -ge 20 ] && [ $((n % 5)) -ne 0 ] || fail "$n captions: want >= 20 and a partial last batch of 5"

# st_tensors FILE: "name dtype shape sha256-of-float32-data" per tensor, sorted.
# F16 (the hub fixture's) is widened to float32 so files of either compare.
st_tensors() { $PY - "$1" <<'EOF'
import hashlib, json, struct, sys
with open(sys.argv[1], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    head = json.loads(f.read(n))
    data = f.read()
for name in sorted(k for k in head if k != "__metadata__"):
    t = head[name]
    raw = data[t["data_offsets"][0]:t["data_offsets"][1]]
    if t["dtype"] == "F16":
        vals = struct.unpack("<%de" % (len(raw) // 2), raw)
        raw = struct.pack("<%df" % len(vals), *vals)
    elif t["dtype"] != "F32":
        continue  # mask buffers
    print(name, t["shape"], hashlib.sha256(raw).hexdigest())
EOF
}

gpt2="$fx/train/gpt2_fullvocab"
common=(--manifest "$tmp/man" --store "$tmp/store" --check-every 1)
train() { # OUT args...
  local out=$1; shift
  "$CLIPCAP" train "${common[@]}" --out "$out" "$@" >"$out.stdout" 2>"$out.log" || {
    echo "train $out failed:"; cat "$out.log"; exit 1; }
}
ckpt() { ls "$1"/model-step-*.safetensors | tail -1; }

"$CLIPCAP" train --help >"$tmp/help.txt" # not piped into grep -q, which may end it with SIGPIPE
grep -q -- '--init CKPT' "$tmp/help.txt"
grep -q -- '--no-shuffle' "$tmp/help.txt"

# ---- 1. --init from our own checkpoints ----
train "$tmp/A" --gpt2 "$gpt2" --mapping mlp --prefix-len 4 --batch 6 --lr 1e-2 --warmup 1 --max-steps 3 --seed 7
A=$(ckpt "$tmp/A")
st_tensors "$A" > "$tmp/A.t"
grep -q '^gpt.transformer.wte.weight ' "$tmp/A.t"
# trained GPT-2 differs from the --gpt2 dir's, so "equal to A" below means "from A"
st_tensors "$gpt2/model.safetensors" | sed 's/^transformer\./gpt.transformer./' > "$tmp/hub.t"
grep -qxF -f <(grep '^gpt.transformer.wte.weight ' "$tmp/hub.t") "$tmp/A.t" && fail "run A left wte untrained"

# no --mapping / --prefix-len: both read from A's shapes; another seed
train "$tmp/B" --gpt2 "$gpt2" --init "$A" --batch 6 --lr 0 --max-steps 1 --seed 99
diff "$tmp/A.t" <(st_tensors "$(ckpt "$tmp/B")")
grep -q 'weights from .*MLP mapper, prefix 4, GPT-2 too' "$tmp/B.log"

# frozen: GPT-2 is A's and, not being the --gpt2 dir's, is saved as well
train "$tmp/C" --gpt2 "$gpt2" --init "$A" --freeze-gpt2 --mapping mlp --prefix-len 4 --batch 6 --lr 0 --max-steps 1
diff "$tmp/A.t" <(st_tensors "$(ckpt "$tmp/C")")
# ...and a resumed run (flags without --init) takes it from its checkpoint:
# byte-identical to the straight run
frozen=(--gpt2 "$gpt2" --freeze-gpt2 --mapping mlp --prefix-len 4 --batch 6 --lr 1e-2 --warmup 1 --save-every 1)
train "$tmp/R" "${frozen[@]}" --init "$A" --max-steps 2
train "$tmp/Rr" "${frozen[@]}" --init "$A" --max-steps 1
train "$tmp/Rr" "${frozen[@]}" --resume --max-steps 2
cmp "$tmp/R/model-step-00000002.safetensors" "$tmp/Rr/model-step-00000002.safetensors"

# Transformer, frozen GPT-2: a mapper-only checkpoint; clip length 3 and 2
# layers inferred; the new run tunes GPT-2 starting from the --gpt2 dir's
train "$tmp/T1" --gpt2 "$gpt2" --mapping transformer --freeze-gpt2 --prefix-len 4 --clip-len 3 --mapper-layers 2 \
  --batch 6 --lr 1e-2 --warmup 1 --max-steps 2
T1=$(ckpt "$tmp/T1")
st_tensors "$T1" > "$tmp/T1.t"
grep -q '^gpt\.' "$tmp/T1.t" && fail "a frozen run saved the --gpt2 dir's GPT-2"
train "$tmp/T2" --gpt2 "$gpt2" --init "$T1" --batch 6 --lr 0 --max-steps 1
st_tensors "$(ckpt "$tmp/T2")" > "$tmp/T2.t"
diff "$tmp/T1.t" <(grep '^clip_project\.' "$tmp/T2.t")
diff <(grep '^gpt.transformer\.' "$tmp/hub.t") <(grep '^gpt.transformer\.' "$tmp/T2.t")
grep -q '"clip_len":3' <(tr -d ' \n' < "$tmp/T2/state.json")
grep -q '"mapper_layers":2' <(tr -d ' \n' < "$tmp/T2/state.json")

# ---- 2. the paper's .pt (PyTorch-written fixtures; GPT-2 E = 16, V = 64) ----
cfx="$fx/caption"
train "$tmp/P" --gpt2 "$cfx/gpt2" --init "$cfx/mlp_tuned.pt" --batch 6 --lr 0 --max-steps 1
st_tensors "$(ckpt "$tmp/P")" > "$tmp/P.t"
diff "$tmp/P.t" <(st_tensors "$cfx/mlp_tuned.safetensors" | grep -Ev "\.attn\.(masked_)?bias ")
train "$tmp/Q" --gpt2 "$cfx/gpt2" --init "$cfx/tf_frozen.pt" --freeze-gpt2 --batch 6 --lr 0 --max-steps 1
diff <(st_tensors "$cfx/tf_frozen.safetensors") <(st_tensors "$(ckpt "$tmp/Q")")

# ---- 3. refusals: one error line naming the file (and tensor), nothing trained ----
# (more malformed files, read through the same captioner_infer_config, in unit.captioner)
refuse() { # NAME EXPECTED-REGEX args...
  local name=$1 want=$2 rc=0; shift 2
  "$CLIPCAP" train "${common[@]}" --batch 6 --max-steps 1 --out "$tmp/bad-$name" "$@" \
    >"$tmp/bad-$name.stdout" 2>"$tmp/bad-$name.log" || rc=$?
  local err
  err=$(grep 'clipcap train: error: ' "$tmp/bad-$name.log" || true)
  if [ "$rc" -eq 0 ] || [ "$(printf '%s\n' "$err" | grep -c .)" -ne 1 ] || ! grep -Eq -- "$want" <<<"$err" ||
     [ -s "$tmp/bad-$name.stdout" ] || [ -e "$tmp/bad-$name/log.jsonl" ] || ls "$tmp/bad-$name"/model-* >/dev/null 2>&1; then
    echo "train_init: '$name' (rc $rc) should fail with one error matching '$want':"; cat "$tmp/bad-$name.log"; exit 1
  fi
}
head -c 300 "$A" > "$tmp/truncated.safetensors"
# A's tensors plus one more layer than the model has
$PY - "$A" "$tmp/extra.safetensors" <<'EOF'
import json, struct, sys
with open(sys.argv[1], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    head = json.loads(f.read(n))
    data = f.read()
end = len(data)
head["gpt.transformer.h.1.ln_1.weight"] = {"dtype": "F32", "shape": [8], "data_offsets": [end, end + 32]}
data += bytes(32)
h = json.dumps(head).encode()
h += b" " * (-len(h) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(h)) + h + data)
EOF
refuse missing "$tmp/nope.safetensors" --gpt2 "$gpt2" --init "$tmp/nope.safetensors"
refuse truncated "truncated.safetensors" --gpt2 "$gpt2" --init "$tmp/truncated.safetensors"
refuse mlprows "bad_mlp_rows.safetensors: tensor clip_project.model.2.weight" --gpt2 "$cfx/gpt2" \
  --init "$cfx/bad_mlp_rows.safetensors"
refuse extra "extra.safetensors: tensor gpt.transformer.h.1.ln_1.weight is not part" --gpt2 "$gpt2" \
  --init "$tmp/extra.safetensors"
# the .pt's GPT-2 (E = 16, V = 64) is not the --gpt2 dir's (E = 8, V = 50257)
refuse gpt2dims "mlp_tuned.pt: tensor gpt.transformer.wte.weight has shape" --gpt2 "$gpt2" --init "$cfx/mlp_tuned.pt"
refuse prefix "mlp_tuned.pt: tensor clip_project.model.2.weight means --prefix-len 4, but --prefix-len 5" \
  --gpt2 "$cfx/gpt2" --init "$cfx/mlp_tuned.pt" --prefix-len 5
refuse mapping "mlp_tuned.pt: tensor clip_project.model.0.weight is an MLP mapper's, but --mapping transformer" \
  --gpt2 "$cfx/gpt2" --init "$cfx/mlp_tuned.pt" --mapping transformer
refuse layers "tf_frozen.pt: tensor clip_project.transformer.layers.N.\* means --mapper-layers 2, but --mapper-layers 8" \
  --gpt2 "$cfx/gpt2" --init "$cfx/tf_frozen.pt" --mapper-layers 8
refuse clipdim "clipcap_mlp.pt: tensor clip_project.model.0.weight takes CLIP embeddings of 24, but the store's have 16" \
  --gpt2 "$fx/train/gpt2_bare" --init "$fx/train/clipcap_mlp.pt"
refuse resume "--init and --resume" --gpt2 "$gpt2" --init "$A" --resume

# ---- 4. --no-shuffle ----
col() { sed -e "s/.*\"$1\": \\([^,}]*\\).*/\\1/" "$2"; }
train "$tmp/N1" --gpt2 "$gpt2" --init "$A" --batch 1 --epochs 1 --no-shuffle
diff "$tmp/lengths" <(col tokens "$tmp/N1.stdout")
grep -q '"shuffle": false' "$tmp/N1/state.json"
train "$tmp/S1" --gpt2 "$gpt2" --init "$A" --batch 1 --epochs 1
[ "$(col tokens "$tmp/S1.stdout" | sort -n)" = "$(sort -n "$tmp/lengths")" ] || fail "shuffled: other captions"
cmp -s "$tmp/lengths" <(col tokens "$tmp/S1.stdout") && fail "shuffled run kept manifest order"

on_ranks 2 "$CLIPCAP" train "${common[@]}" --gpt2 "$gpt2" --init "$A" --batch 5 --epochs 2 \
  --no-shuffle --out "$tmp/N2" >"$tmp/N2.stdout" 2>"$tmp/N2.log" || { cat "$tmp/N2.log"; exit 1; }
awk -v n="$n" '{ s += $1 } NR % 5 == 0 && NR <= n - n % 5 { print s; s = 0 }' "$tmp/lengths" > "$tmp/sums"
diff <(cat "$tmp/sums" "$tmp/sums") <(col tokens "$tmp/N2.stdout")
diff <(for e in 0 1; do sed "s/.*/$e/" "$tmp/sums"; done) <(col epoch "$tmp/N2.stdout")

# the seed only drives shuffling, the random init and GPT-2's dropout masks:
# with none of them, runs agree
train "$tmp/D1" --gpt2 "$gpt2" --init "$A" --batch 5 --max-steps 4 --lr 1e-2 --warmup 1 --no-shuffle --seed 1 --dropout 0
train "$tmp/D2" --gpt2 "$gpt2" --init "$A" --batch 5 --max-steps 4 --lr 1e-2 --warmup 1 --no-shuffle --seed 2 --dropout 0
diff <(col loss "$tmp/D1.stdout") <(col loss "$tmp/D2.stdout")
echo "train_init: ok ($n captions)"
