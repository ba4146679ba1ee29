#!/usr/bin/env bash
# The main job end to end on the embedded default, as one `clipcap run` of
# launch/examples/demo.json on ${CLIPCAP_DEMO_RANKS:-2} MPI ranks: a
# synthetic shapes data set (clipcap synth, COCO layout) → manifest (shard)
# → CLIP features in the feature store (extract, the tiny CLIP trained on synthetic
# shapes: tests/fixtures/clip/shapes) → data-parallel training of the MLP
# mapper + GPT-2 (the tiny GPT-2 pre-trained on synthetic caption text) on
# train2014 → evaluation on the held-out val2014 images (BLEU/ROUGE-L/CIDEr-D
# next to a shuffled-captions control, and a few held-out images with their
# generated and reference captions) → captions for every image (resumable
# zstd JSONL shards) → report.html when this build has the report stage.
# Installs what is missing and builds first. Output under ${CLIPCAP_DEMO_DIR:-demo-out}/
# (layout: docs/operations.md, "A whole run").
set -euo pipefail
cd "$(dirname "$0")/.."
./launch/deps.sh
./launch/build.sh >/dev/null
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
out="${CLIPCAP_DEMO_DIR:-demo-out}"
np="${CLIPCAP_DEMO_RANKS:-2}"
rm -rf "$out"
mpirun --oversubscribe -np "$np" ./build/clipcap run launch/examples/demo.json --out "$out"
