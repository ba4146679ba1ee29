#!/usr/bin/env bash
# The test command: installs what is missing, builds, runs every ctest test
# (unit tests plain and under ASan+UBSan, mpirun integration tests), then
# runs each libFuzzer target for a bounded time.
set -euo pipefail
cd "$(dirname "$0")/.."
./launch/deps.sh
./launch/build.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
(cd build && ctest --output-on-failure -j2 --timeout 900)
./tests/fuzz/run.sh "${CLIPCAP_FUZZ_SECONDS:-20}"
