#!/usr/bin/python3
"""Checks a `clipcap synth` tree with Pillow, an independent decoder:
every good record's image opens, has the size and mode synth_index.json
claims, and the pixel at each shape's centre (and the background in a
corner) is the colour the captions name; every tar shard opens with Python's
tarfile and its members equal the img2dataset files.

Not run by CI (CI installs no Python packages); run by hand:
    build/clipcap synth --out /tmp/s --bad && /usr/bin/python3 tests/gen/synth_pillow_check.py /tmp/s
Tolerance: 40 per channel at shape centres for lossy formats (JPEG 4:2:0
chroma and WebP smear small shapes); exact for lossless ones. Shapes under 3
pixels across and images under 8 px are only size/mode checked."""
import json, os, sys, tarfile
from PIL import Image

root = sys.argv[1]
idx = json.load(open(os.path.join(root, "synth_index.json")))
checked = pixels = 0
fails = []
for r in idx["records"]:
    if r["kind"] != "good":
        continue
    for key in ("coco_path", "cc_path"):
        if key not in r:
            continue
        path = os.path.join(root, r[key])
        im = Image.open(path)
        im.load()
        checked += 1
        if im.size != (r["width"], r["height"]) or im.mode != r["pil_mode"]:
            fails.append(f"{path}: {im.size} {im.mode} != {r['width']}x{r['height']} {r['pil_mode']}")
            continue
        rgb = im.convert("RGB")
        lossy = r["format"].startswith("jpeg") or r["format"].startswith("webp-lossy")
        tol = 40 if lossy else 0
        grey = im.mode in ("L", "LA")
        probes = [(o["x"], o["y"], o["rgb"], o["half"]) for o in r["objects"]]
        probes.append((0.5, 0.5, r["background"]["rgb"], 99))
        for x, y, want, half in probes:
            if half < 3 or min(im.size) < 8:
                continue
            got = rgb.getpixel((int(x), int(y)))
            if grey:
                want = [round(0.299 * want[0] + 0.587 * want[1] + 0.114 * want[2])] * 3
            if max(abs(a - b) for a, b in zip(got, want)) > tol:
                fails.append(f"{path}: pixel ({int(x)},{int(y)}) {got} != {want} (tol {tol})")
            pixels += 1
tars = 0
wds = os.path.join(root, "cc", "wds")
for name in sorted(os.listdir(wds)) if os.path.isdir(wds) else []:
    with tarfile.open(os.path.join(wds, name)) as t:
        for m in t.getmembers():
            data = t.extractfile(m).read()
            shard = name.split(".")[0]
            f = os.path.join(root, "cc", "files", shard, m.name)
            if open(f, "rb").read() != data:
                fails.append(f"{name}:{m.name} differs from {f}")
        tars += 1
for f in fails:
    print("FAIL", f)
print(f"pillow: {checked} images opened, {pixels} pixel probes, {tars} tar shards; {len(fails)} failures")
sys.exit(1 if fails else 0)
