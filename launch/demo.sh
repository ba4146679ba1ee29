#!/usr/bin/env bash
# The main job end to end on the embedded default: synthetic shapes data set,
# sharded over 2 MPI ranks. Installs what is missing and builds first.
# Output under ${CLIPCAP_DEMO_DIR:-demo-out}/.
set -euo pipefail
cd "$(dirname "$0")/.."
./launch/deps.sh
./launch/build.sh >/dev/null
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
out="${CLIPCAP_DEMO_DIR:-demo-out}"
np="${CLIPCAP_DEMO_RANKS:-2}"
rm -rf "$out"
mkdir -p "$out"
./build/clipcap version
