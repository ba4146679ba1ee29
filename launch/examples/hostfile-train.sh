#!/usr/bin/env bash
# Data-parallel training over the hosts of a hostfile ("host slots=N" lines).
set -euo pipefail
mpirun --hostfile "${HOSTFILE:-hosts.txt}" -np "${NP:-8}" -x OMP_NUM_THREADS=8 \
  ./build/clipcap train --manifest /data/coco/manifest --store /data/coco/features \
  --gpt2 /models/gpt2 --mapping mlp --out /runs/coco-mlp
