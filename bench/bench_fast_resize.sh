#!/usr/bin/env bash
# --fast-resize (JPEG decoded at a reduced DCT scale, shorter side still
# >= S) against exact mode: how close the CLIP embeddings stay (cosine
# similarity, min and mean per image set) and how much faster decode +
# preprocess gets (images per CPU second, one thread, bench_preprocess).
#
# Image sets: the six natural photos in ../shared/images (beside the project), and large
# JPEGs made here: those photos upscaled (bicubic) to a 1600-pixel shorter
# side, plus two 3000x2000 / 2000x3000 synthetic textures with noise (the
# hard case for a DCT-domain reduction). Models: the random-weight ViT-B/32
# that bench/bench_clip.sh writes (bench/out/clip/clip_b32, S = 224; skipped
# with a note when absent) and the tiny test fixture (S = 32, so fast mode
# reduces every image at least 1/4). Real CLIP weights cannot be downloaded
# here: random towers show how much the input moves, not how much a trained
# CLIP's semantics move.
#
# usage: bench/bench_fast_resize.sh
# env:   BUILD (default build-bench), CLIP_B32 (default bench/out/clip/clip_b32)
set -euo pipefail
cd "$(dirname "$0")/.."
b=${BUILD:-build-bench}
b32=${CLIP_B32:-bench/out/clip/clip_b32}
PY=/usr/bin/python3
BUILD_ONLY=1 BUILD="$b" bash bench/bench_preprocess.sh >/dev/null
cmake --build "$b" -j2 --target clipcap >/dev/null
imgdir="$b/fast-resize-images"
mkdir -p "$imgdir/natural" "$imgdir/large"
cp ../shared/images/*.jpg "$imgdir/natural/"
"$PY" - "$imgdir" <<'PYEOF'
import glob, os, sys
import numpy as np
from PIL import Image
d = sys.argv[1]
for f in sorted(glob.glob(os.path.join(d, "natural", "*.jpg"))):
    im = Image.open(f).convert("RGB")
    s = 1600 / min(im.size)
    im.resize((round(im.width * s), round(im.height * s)), Image.BICUBIC).save(
        os.path.join(d, "large", "up_" + os.path.basename(f)), quality=92)
rng = np.random.default_rng(11)
for name, (w, h) in (("texture_3000x2000.jpg", (3000, 2000)), ("texture_2000x3000.jpg", (2000, 3000))):
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    planes = [128 + 70 * np.sin(x / (9.0 + 4 * c) + y / (13.0 + 3 * c)) + rng.normal(0, 25, x.shape) for c in range(3)]
    Image.fromarray(np.clip(np.stack(planes, -1), 0, 255).astype(np.uint8)).save(os.path.join(d, "large", name),
                                                                                    quality=90)
PYEOF

embed() { # embed MODEL OUT [--fast-resize]: one JSON line per image, natural then large
    OMP_NUM_THREADS=2 "$b/clipcap" embed --clip "$1" --threads 2 "${@:3}" "$imgdir"/natural/*.jpg "$imgdir"/large/*.jpg \
        >"$2" 2>/dev/null
}
echo "bench_fast_resize: embedding cosine similarity, --fast-resize vs exact (per image set: min / mean)"
for model in "$b32" tests/fixtures/clip/tiny; do
    if [ ! -f "$model/model.safetensors" ]; then
        echo "  $model: not found (run bench/bench_clip.sh first): skipped"
        continue
    fi
    embed "$model" "$imgdir/exact.jsonl"
    embed "$model" "$imgdir/fast.jsonl" --fast-resize
    "$PY" - "$model" "$imgdir/exact.jsonl" "$imgdir/fast.jsonl" <<'PYEOF'
import json, sys
import numpy as np
model = sys.argv[1]
ex = [json.loads(l) for l in open(sys.argv[2])]
fa = [json.loads(l) for l in open(sys.argv[3])]
assert [r["path"] for r in ex] == [r["path"] for r in fa] and ex, "embed outputs differ in images"
sets = {}
for a, b in zip(ex, fa):
    u, v = np.array(a["embedding"], np.float64), np.array(b["embedding"], np.float64)
    cos = float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))
    sets.setdefault("natural" if "/natural/" in a["path"] else "large", []).append((cos, a["path"].split("/")[-1]))
tag = model.rstrip("/").split("/")[-1]
for name, vals in sets.items():
    c = [x for x, _ in vals]
    worst = min(vals)
    print("  %-6s %-7s %2d images: min %.6f (%s)  mean %.6f" % (tag, name, len(c), worst[0], worst[1], sum(c) / len(c)))
# The scale to read those against: how similar two DIFFERENT photos look to
# this tower (exact mode, the natural set: the large set holds upscaled
# copies of the same photos). A random tower maps every input close to a
# common direction, so compare 1 - cos.
E = np.array([r["embedding"] for r in ex if "/natural/" in r["path"]], np.float64)
E /= np.linalg.norm(E, axis=1, keepdims=True)
pairs = (E @ E.T)[np.triu_indices(len(E), 1)]
print("  %-6s between different photos (%d pairs): min %.6f  mean %.6f  max %.6f" % (tag, len(pairs), pairs.min(),
                                                                                       pairs.mean(), pairs.max()))
PYEOF
done

echo "bench_fast_resize: decode + preprocess speed, 1 thread, images per CPU second"
for set in natural large; do
    for size in 224 32; do
        read -r _ exact < <("$b/bench_preprocess" --size "$size" --threads 1 --passes 10 "$imgdir/$set"/*.jpg)
        read -r _ fast < <("$b/bench_preprocess" --size "$size" --threads 1 --passes 10 --fast-resize "$imgdir/$set"/*.jpg)
        awk -v s="$set" -v z="$size" -v e="$exact" -v f="$fast" \
            'BEGIN { printf "  %-7s S=%-3d exact %7.1f | --fast-resize %7.1f (%.2fx)\n", s, z, e, f, f / e }'
    done
done
