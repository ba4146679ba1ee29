#!/usr/bin/env bash
# The demo's captioner works: `mpirun -np 2 clipcap run launch/examples/demo.json`
# (what ./launch/demo.sh runs, into a scratch run folder) trains on
# synthetic train2014 images and captions the held-out val2014 images,
# never trained on. Asserted, from the run's own files:
#   - held-out CIDEr-D >= 5 x the shuffled-captions control's (each image
#     scored with the next image's caption; eval/control-scores.json);
#   - the captions name the image's colour and shape: the first
#     "COLOUR SHAPE" phrase of each generated caption is checked against the
#     image's REFERENCE captions (the (colour, shape) pairs they name, so
#     nothing here is a hard-coded output). Accuracy must beat
#     max(2 x chance, floor), chance being the best image-blind answer
#     (always the colour / shape named for the most held-out images), and
#     the same captions scored against the next image's references
#     (control) must not;
#   - no degenerate captions: none repeats a word three times in a row
#     (" picture picture picture"), and they are not all alike;
#   - the final summary prints the metrics next to the control.
source "$(dirname "$0")/lib.bash"
PY=/usr/bin/python3
src="${CLIPCAP_SOURCE:?set by ctest}"
export OMP_NUM_THREADS=1
# demo.json names the fixtures relative to the repository root.
cd "$src"
on_ranks 2 "$CLIPCAP" run launch/examples/demo.json --out "$tmp/demo" >"$tmp/demo.out" 2>"$tmp/demo.log" ||
  { tail -20 "$tmp/demo.log"; echo "FAIL: demo run"; exit 1; }
cat "$tmp/demo.out"
grep -q "CIDEr-D is .*x the control's" "$tmp/demo.out" || { echo "FAIL: no metrics vs control in the summary"; exit 1; }
"$PY" - "$tmp/demo" <<'EOF'
import json, re, sys
out = sys.argv[1]
score = json.load(open(f"{out}/eval/scores.json"))["CIDEr"]
control = json.load(open(f"{out}/eval/control-scores.json"))["CIDEr"]
res = json.load(open(f"{out}/eval/results.json"))
refs = {}
for a in json.load(open(f"{out}/manifest/references.json"))["annotations"]:
    refs.setdefault(a["image_id"], []).append(a["caption"].lower())
# common/data/synth_scene.c's words; two-word colours first.
COLOURS = ["dark grey", "light grey", "red", "green", "blue", "yellow", "orange", "purple", "pink", "brown",
           "black", "grey", "white"]
SHAPES = ["circle", "square", "triangle", "diamond"]
phrase = re.compile(r"\b(%s) (%s)\b" % ("|".join(COLOURS), "|".join(SHAPES)))
# What each image's references say: the (colour, shape) pairs they name.
truth = [{m.groups() for c in refs[r["image_id"]] for m in phrase.finditer(c)} for r in res]
assert all(truth), "a reference caption names no COLOUR SHAPE phrase"
said = [phrase.search(r["caption"].lower()) for r in res]
n = len(res)
def accuracy(truth, k):
    return sum(bool(m) and m.group(k + 1) in {t[k] for t in tr} for m, tr in zip(said, truth)) / n
def chance(k):
    counts = {}
    for tr in truth:
        for v in {t[k] for t in tr}:
            counts[v] = counts.get(v, 0) + 1
    return max(counts.values()) / n
shifted = truth[1:] + truth[:1]
bad = []
print(f"demo: {n} held-out images; CIDEr-D {score:.3f} vs control {control:.3f} ({score / max(control, 1e-9):.1f}x)")
if not score >= 5 * control:
    bad.append(f"CIDEr-D {score:.3f} < 5 x control {control:.3f}")
for k, what, floor in ((0, "colour", 0.5), (1, "shape", 0.5)):
    acc, ch, ctl = accuracy(truth, k), chance(k), accuracy(shifted, k)
    need = max(2 * ch, floor) if what == "colour" else max(ch + 0.25, floor)
    print(f"demo: {what} right in {acc:.2f} of the captions (chance {ch:.2f}, need > {need:.2f}; "
          f"against the next image's references {ctl:.2f})")
    if not acc > need:
        bad.append(f"{what} accuracy {acc:.2f} <= {need:.2f}")
    if ctl > need:
        bad.append(f"{what}: the control {ctl:.2f} passes the bar, the bar means nothing")
caps = [r["caption"] for r in res]
rep = [c for c in caps if re.search(r"\b(\w+) \1 \1\b", c.lower())]
if rep:
    bad.append(f"{len(rep)} degenerate captions, e.g. {rep[0]!r}")
if len(set(caps)) < n // 4:
    bad.append(f"only {len(set(caps))} distinct captions for {n} images")
if bad:
    sys.exit("FAIL: " + "; ".join(bad))
EOF
