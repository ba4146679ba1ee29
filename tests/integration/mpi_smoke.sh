#!/usr/bin/env bash
# The binary runs as a single process and as two mpirun ranks.
set -euo pipefail
out=$("$CLIPCAP" version)
echo "$out" | grep -q '"ranks": 1'
out=$(mpirun --oversubscribe -np 2 "$CLIPCAP" version)
echo "$out" | grep -q '"ranks": 2'
[ "$(echo "$out" | wc -l)" -eq 1 ]   # rank 0 alone prints
echo "mpi_smoke: ok"
