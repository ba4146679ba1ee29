#!/usr/bin/env bash
# The feature store at corpus scale (docs/store.md, Measured):
#  - bytes on disk per 512-d embedding, fp32 and fp16, as `du` counts the
#    store directory after extract's consolidation, against the payload
#    (dim x dtype + key);
#  - a nightly re-run on an unchanged corpus: wall time against the first
#    run's, and image files opened (strace -f, open/openat of image paths);
#  - the same re-run with --rehash, which reads and hashes every image as
#    every re-run did before the stat() check: the ratio is what it saves.
# The model is the tiny CLIP fixture with its projection widened to 512
# (random weights; only the output size matters to the store), so the
# images' decoding, not the encoder, dominates the first run.
#
# usage: bench/bench_store.sh [N...]   (default: 20000 100000)
# env:   CLIPCAP (default build/clipcap), WORKDIR (default a new temp dir),
#        THREADS (decode threads, 2), BATCH (64)
# Takes many minutes at 100k images (synth and the first runs dominate);
# never part of the tests.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
C=${CLIPCAP:-$ROOT/build/clipcap}
W=${WORKDIR:-$(mktemp -d)}
THREADS=${THREADS:-2}
BATCH=${BATCH:-64}
SIZES=("$@")
[ ${#SIZES[@]} -gt 0 ] || SIZES=(20000 100000)
mkdir -p "$W"
echo "bench_store: work dir $W" >&2

# The tiny CLIP with a 512-wide projection (visual and text), written with
# the standard library: same tensors, projection rows drawn uniformly.
CLIP512="$W/clip512"
if [ ! -f "$CLIP512/model.safetensors" ]; then
    mkdir -p "$CLIP512"
    /usr/bin/python3 - "$ROOT/tests/fixtures/clip/tiny" "$CLIP512" <<'PYEOF'
import json, random, struct, sys
src, dst = sys.argv[1], sys.argv[2]
cfg = json.load(open(src + "/config.json"))
cfg["projection_dim"] = 512
json.dump(cfg, open(dst + "/config.json", "w"), indent=2)
raw = open(src + "/model.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n])
rng = random.Random(7)
tensors = {}
for k, v in head.items():
    if k == "__metadata__": continue
    data = raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]
    shape = v["shape"]
    if k in ("visual_projection.weight", "text_projection.weight"):
        shape = [512, shape[1]]
        data = struct.pack("<%df" % (512 * shape[1]), *(rng.uniform(-0.2, 0.2) for _ in range(512 * shape[1])))
    tensors[k] = (v["dtype"], shape, data)
out, off = {"__metadata__": head.get("__metadata__", {})}, 0
for k, (dt, shape, data) in tensors.items():
    out[k] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(data)]}
    off += len(data)
h = json.dumps(out).encode()
h += b" " * ((8 - len(h) % 8) % 8)
with open(dst + "/model.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h)
    for k in tensors: f.write(tensors[k][2])
PYEOF
fi

now() { date +%s.%N; }
jget() { /usr/bin/python3 -c 'import json,sys
v=json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): v=v[k]
print(v)' "$1" "$2"; }

for n in "${SIZES[@]}"; do
    d="$W/n$n"
    if [ ! -f "$d/man/index.json" ]; then
        rm -rf "$d"
        mkdir -p "$d"
        echo "bench_store: synth $n images" >&2
        "$C" synth --out "$d/syn" --count "$n" --layouts coco --large 0 >/dev/null 2>"$d/synth.log"
        "$C" shard --format coco --input "$d/syn/coco/annotations/captions_train2014.json" \
            --input "$d/syn/coco/annotations/captions_val2014.json" --images-root "$d/syn/coco" \
            --gpt2 "$ROOT/tests/fixtures/gpt2" --shards 16 --no-image-check --out "$d/man" >/dev/null 2>"$d/shard.log"
    fi
    S="$d/store"
    rm -rf "$S"
    ex() { "$C" extract --manifest "$d/man" --clip "$CLIP512" --store "$S" --batch "$BATCH" --threads "$THREADS" \
        --encoder-threads 1 "$@" 2>>"$d/extract.log"; }
    sync
    t0=$(now); ex >"$d/first.json"; t1=$(now)
    "$C" store stats --store "$S" >"$d/stats32.json" 2>/dev/null
    du32=$(du -s --block-size=1 "$S" | cut -f1)
    t2=$(now); ex >"$d/rerun.json"; t3=$(now)
    strace -f -qq -e trace=open,openat -o "$d/trace" "$C" extract --manifest "$d/man" --clip "$CLIP512" --store "$S" \
        --batch "$BATCH" --threads "$THREADS" --encoder-threads 1 >/dev/null 2>>"$d/extract.log"
    opened=$(grep -E '/syn/coco/(train|val)2014/' "$d/trace" | grep -vc ' = -1 ' || true)
    t4=$(now); ex --rehash >"$d/rehash.json"; t5=$(now)
    ex --dtype fp16 >"$d/fp16.json"
    "$C" store stats --store "$S" >"$d/stats16.json" 2>/dev/null
    du16=$(du -s --block-size=1 "$S" | cut -f1)
    /usr/bin/python3 - "$n" "$t0" "$t1" "$t2" "$t3" "$t4" "$t5" "$opened" "$du32" "$du16" "$d" <<'PYEOF'
import json, os, sys
n, t0, t1, t2, t3, t4, t5 = int(sys.argv[1]), *map(float, sys.argv[2:8])
opened, du32, du16, d = int(sys.argv[8]), int(sys.argv[9]), int(sys.argv[10]), sys.argv[11]
s32, s16 = json.load(open(d + "/stats32.json")), json.load(open(d + "/stats16.json"))
rerun = json.load(open(d + "/rerun.json"))
pack = d + "/store/packs/" + s16["pack"]["name"]
keylen = os.path.getsize(pack + "/keys.bin") / s16["keys"]
emb = s32["embeddings"]
first, re, rh = t1 - t0, t3 - t2, t5 - t4
row = {"images": n, "embeddings": emb, "avg_key_bytes": round(keylen, 2),
       "fp32_bytes_per_embedding": round(du32 / emb, 1), "fp32_ratio": round(du32 / emb / (512 * 4 + keylen), 4),
       "fp16_bytes_per_embedding": round(du16 / emb, 1), "fp16_ratio": round(du16 / emb / (512 * 2 + keylen), 4),
       "first_run_s": round(first, 2), "unchanged_rerun_s": round(re, 2), "rerun_fraction": round(re / first, 4),
       "rerun_skipped_unread": rerun["skipped_unread"], "rerun_images_opened": opened,
       "rehash_rerun_s": round(rh, 2), "rehash_over_stat": round(rh / re, 2)}
print(json.dumps(row))
PYEOF
done
