#!/usr/bin/env bash
# The main job end to end on the embedded default: a synthetic shapes data
# set (clipcap synth) → manifest (shard) → CLIP features in the feature store (extract,
# tiny random CLIP shipped in tests/fixtures) → data-parallel training of the
# MLP mapper + GPT-2 (tiny GPT-2 with the real 50257-token vocabulary) →
# captions for every image (resumable zstd JSONL shards) → evaluation of the
# trained model (COCO results file + BLEU/ROUGE-L/CIDEr-D), each stage on
# ${CLIPCAP_DEMO_RANKS:-2} MPI ranks.
# Installs what is missing and builds first. Output under ${CLIPCAP_DEMO_DIR:-demo-out}/.
set -euo pipefail
cd "$(dirname "$0")/.."
./launch/deps.sh
./launch/build.sh >/dev/null
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
out="${CLIPCAP_DEMO_DIR:-demo-out}"
np="${CLIPCAP_DEMO_RANKS:-2}"
fx=tests/fixtures
run() { mpirun --oversubscribe -np "$np" ./build/clipcap "$@"; }
rm -rf "$out"
mkdir -p "$out"
echo "== synth" >&2
run synth --out "$out/data" --count 96 --bad
echo "== shard" >&2
run shard --format coco --input "$out/data/coco/annotations/captions_train2014.json" \
  --images-root "$out/data/coco" --gpt2 "$fx/gpt2" --shards 4 --out "$out/manifest" \
  --write-annotations "train2014:$out/references.json"
echo "== extract" >&2
run extract --manifest "$out/manifest" --clip "$fx/clip/tiny" --store "$out/store"
run store stats --store "$out/store"
echo "== train" >&2
run train --manifest "$out/manifest" --store "$out/store" --gpt2 "$fx/train/gpt2_fullvocab" \
  --mapping mlp --prefix-len 4 --batch 8 --epochs 2 --lr 1e-2 --warmup 4 --out "$out/run"
ckpt=$(ls "$out"/run/model-step-*.safetensors | tail -1)
# captioning needs GPT-2 as a hub directory: the model plus its tokenizer files
gpt2="$out/gpt2"
mkdir -p "$gpt2"
cp "$fx/train/gpt2_fullvocab/config.json" "$fx/train/gpt2_fullvocab/model.safetensors" \
  "$fx/gpt2/vocab.json" "$fx/gpt2/merges.txt" "$gpt2/"
echo "== caption (corpus dump with $ckpt)" >&2
run caption --manifest "$out/manifest" --store "$out/store" --model "$ckpt" \
  --gpt2 "$gpt2" --max-tokens 40 --out "$out/captions"
echo "== eval" >&2
run eval --manifest "$out/manifest" --split train2014 --skip-failed --store "$out/store" --model "$ckpt" \
  --gpt2 "$gpt2" --max-tokens 40 --annotations "$out/references.json" \
  --results "$out/results.json" | tee "$out/scores.json"
echo "demo: done; outputs in $out/ (manifest/, store/, run/, captions/, results.json, scores.json)" >&2
