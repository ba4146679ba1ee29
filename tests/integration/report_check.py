"""Checks of report_html.sh on Chromium's DOM dump and screenshot, with the
standard library only (CI has no imaging library):
  report_check.py RUN_DIR DOM.html SHOT.npy IMG_DIR
Writes each gallery image's bytes to IMG_DIR/N.webp for the caller to decode
with clipcap. Exits non-zero with a reason on the first failed check."""
import base64
import html.parser
import json
import os
import struct
import sys

run, dom_path, shot, img_dir = sys.argv[1:5]


def fail(msg):
    sys.exit("report_check: " + msg)


class Dom(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.polylines = {}
        self.imgs = []
        self.rows = []          # (class, [cell texts])
        self.rects = []
        self.gens = []
        self._row = None
        self._cell = None
        self._gen = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "polyline":
            self.polylines[a.get("class")] = a.get("points", "")
        elif tag == "img":
            self.imgs.append(a.get("src", ""))
        elif tag == "rect" and a.get("class") == "bar":
            self.rects.append(a)
        elif tag == "tr":
            self._row = (a.get("class"), [])
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "div" and a.get("class") == "gen":
            self._gen = []
        elif self._gen is not None:
            fail("markup <%s> inside a generated caption: data was not escaped" % tag)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row[1].append("".join(self._cell))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None
        elif tag == "div" and self._gen is not None:
            self.gens.append("".join(self._gen))
            self._gen = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._gen is not None:
            self._gen.append(data)


dom = Dom()
dom.feed(open(dom_path, encoding="utf-8").read())

# curves: one point per logged step
steps = [json.loads(l) for l in open(os.path.join(run, "train/log.jsonl")) if l.strip()]
for cls in ("curve-loss", "curve-lr"):
    pts = dom.polylines.get(cls)
    if pts is None:
        fail("no <polyline class=%s>" % cls)
    if len(pts.split()) != len(steps):
        fail("%s has %d points, train/log.jsonl %d steps" % (cls, len(pts.split()), len(steps)))

# metrics: one row per metric, values as eval/scores.json has them
scores = json.load(open(os.path.join(run, "eval/scores.json")))
metric_rows = {cells[0]: cells[1:] for cls, cells in dom.rows if cls == "metric"}
for m in ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "SPICE", "images"):
    if m not in metric_rows:
        fail("no metric row for " + m)
    want = "not computed" if scores[m] is None else "%.4g" % scores[m]
    if metric_rows[m][0] != want:
        fail("metric %s shows %r, scores.json says %r" % (m, metric_rows[m][0], want))

# failures by reason: every reason the manifest and the store recorded
fail_rows = {(c[0], c[1]): c[2] for cls, c in dom.rows if cls == "failure"}
man = json.load(open(os.path.join(run, "manifest/summary.json")))
store = json.load(open(os.path.join(run, "store/extract-summary.json")))
expect = [("shard", k, v) for k, v in man["rejected"]["by_reason"].items()]
expect += [("extract", k, v) for k, v in store["failures_by_reason"].items()]
if not expect:
    fail("the synthetic set should have bad records (synth --bad)")
for stage, reason, n in expect:
    if fail_rows.get((stage, reason)) != "%.4g" % n:
        fail("failure row %s/%s shows %r, expected %d" % (stage, reason, fail_rows.get((stage, reason)), n))

# per-image CIDEr-D histogram: 20 bars whose counts add up to the scored images
if len(dom.rects) != 20:
    fail("histogram has %d bars, expected 20" % len(dom.rects))

# gallery: one <img> per entry (eval/results.json, first 6: the test passes --gallery 6), each a WebP data URI
results = json.load(open(os.path.join(run, "eval/results.json")))
n_gallery = min(6, len(results))
if len(dom.imgs) != n_gallery:
    fail("%d <img> in the gallery, expected %d" % (len(dom.imgs), n_gallery))
os.makedirs(img_dir, exist_ok=True)
for i, src in enumerate(dom.imgs):
    prefix = "data:image/webp;base64,"
    if not src.startswith(prefix):
        fail("gallery image %d is not an inline WebP data URI: %r" % (i, src[:40]))
    raw = base64.b64decode(src[len(prefix):], validate=True)
    if raw[:4] != b"RIFF" or raw[8:12] != b"WEBP":
        fail("gallery image %d is not a WebP file" % i)
    open(os.path.join(img_dir, "%02d.webp" % i), "wb").write(raw)
planted = results[0]["caption"]
if planted not in dom.gens:
    fail("the planted caption %r is not shown as text (gens: %r)" % (planted, dom.gens[:2]))


# screenshot: decoded by our PNG decoder (`clipcap preprocess SHOT.png --size
# 224`, run by the caller: the page scaled to 224 wide, centre crop) into a
# float32 [3, 224, 224] .npy; not blank = many distinct colours
raw = open(shot, "rb").read()
hlen = struct.unpack("<H", raw[8:10])[0]
vals = struct.unpack("<%df" % (3 * 224 * 224), raw[10 + hlen:10 + hlen + 4 * 3 * 224 * 224])
plane = 224 * 224
colours = {(round(vals[i], 3), round(vals[plane + i], 3), round(vals[2 * plane + i], 3)) for i in range(plane)}
if len(colours) < 50:
    fail("screenshot looks blank: %d distinct colours" % len(colours))
print("report_check: %d steps, %d metric rows, %d failure rows, %d images, %d colours in the screenshot"
      % (len(steps), len(metric_rows), len(fail_rows), len(dom.imgs), len(colours)))
