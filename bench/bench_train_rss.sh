#!/usr/bin/env bash
# Peak memory of `clipcap train` on a large synthetic data set: IMAGES COCO-
# like images with 5 captions each (bench/gen_big_coco.py, tokenised by
# `clipcap shard`), a feature store with one random fp16 embedding of size
# DIM per image (bench_train_rss.c), a tiny GPT-2 with the real vocabulary
# (tests/fixtures/train/gpt2_fullvocab with its 64 positions widened to 256
# for the longer synthetic captions, so the model is a few MiB and the data
# dominates), 20 steps of batch 40. The peak splits into anonymous
# memory (the trainer's own) and file pages (LMDB's memory map of the store,
# page cache shared by the ranks of a node and dropped under pressure),
# sampled from /proc while it runs; /usr/bin/time gives the total.
#
# usage: bench/bench_train_rss.sh [IMAGES=100000] [DIM=512] [WORKDIR]
# env:   CLIPCAP (default build/clipcap), BUILD (default build: for the helper)
#        CLIPCAP_OLD: a second binary to measure the same way (before/after)
set -euo pipefail
N=${1:-100000}
DIM=${2:-512}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.bash"
C=${CLIPCAP:-$ROOT/build/clipcap}
build=${BUILD:-$ROOT/build}
W=${3:-$(mktemp -d)}
mkdir -p "$W"
if [ ! -f "$W/store/done" ]; then
  bench_build_c "$build" "$ROOT/bench/bench_train_rss.c" "$W/fill"
  /usr/bin/python3 "$ROOT/bench/gen_big_coco.py" "$W/captions.json" "$N"
  rm -rf "$W/man" "$W/store"
  "$C" shard --format coco --input "$W/captions.json" --images-root "$W" --no-image-check \
    --gpt2 "$ROOT/tests/fixtures/gpt2" --out "$W/man" >/dev/null 2>"$W/shard.log"
  "$W/fill" "$W/man" "$W/store" "$DIM"
  /usr/bin/python3 - "$ROOT/tests/fixtures/train/gpt2_fullvocab" "$W/gpt2" <<'PY'
import json, os, struct, sys
import numpy as np
src, dst = sys.argv[1:3]
os.makedirs(dst, exist_ok=True)
cfg = json.load(open(os.path.join(src, "config.json")))
cfg["n_positions"] = cfg["n_ctx"] = 256
json.dump(cfg, open(os.path.join(dst, "config.json"), "w"))
raw = open(os.path.join(src, "model.safetensors"), "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + n]); hdr.pop("__metadata__", None)
dt = {"F16": "<f2", "F32": "<f4"}
tensors = {k: np.frombuffer(raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]], dt[v["dtype"]])
           .astype("<f4").reshape(v["shape"]) for k, v in hdr.items()}
tensors["transformer.wpe.weight"] = np.tile(tensors["transformer.wpe.weight"], (4, 1))
out, off = {}, 0
for k, t in tensors.items():
    out[k] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + t.nbytes]}; off += t.nbytes
h = json.dumps(out).encode(); h += b" " * (-len(h) % 8)
with open(os.path.join(dst, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(t.tobytes() for t in tensors.values()))
PY
  touch "$W/store/done"
fi

measure() { # BINARY NAME -> one JSON line
  local bin=$1 name=$2
  rm -rf "$W/run-$name"
  OMP_NUM_THREADS=1 /usr/bin/time -f "%M %e" -o "$W/$name.time" "$bin" train --manifest "$W/man" --store "$W/store" \
    --gpt2 "$W/gpt2" --mapping mlp --batch 40 --max-steps 20 --save-every 1000 \
    --out "$W/run-$name" >/dev/null 2>"$W/$name.log" &
  bench_peak_rss $! 0.05 || { cat "$W/$name.log"; return 1; }
  local kb secs anon=$PEAK_ANON file=$PEAK_FILE
  read -r kb secs <"$W/$name.time"
  echo "{\"binary\": \"$name\", \"images\": $N, \"captions\": $((5 * N)), \"dim\": $DIM," \
       "\"peak_rss_mib\": $((kb / 1024)), \"peak_anon_mib\": $((anon / 1024)), \"peak_file_mib\": $((file / 1024))," \
       "\"seconds\": $secs, \"store_mib\": $(( $(du -sk "$W/store" | cut -f1) / 1024 ))}"
}
[ -n "${CLIPCAP_OLD:-}" ] && measure "$CLIPCAP_OLD" old
measure "$C" new
echo "work dir: $W"
