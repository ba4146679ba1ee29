#!/usr/bin/env bash
# `clipcap score` scores an empty or whitespace-only caption (results or
# annotations) as the empty caption, as pycocoevalcap does, instead of
# refusing the file: corpus and per-image BLEU-1..4, ROUGE-L and CIDEr-D
# equal the plain-Python transcription of the toolkit
# (tests/gen/gen_metric_fixtures.py, blank_expected.json) to 1e-9 (both in
# doubles; only the order of sums differs).
. "$CLIPCAP_SOURCE/tests/integration/lib.bash"
fx="$CLIPCAP_FIXTURES/metrics"
"$CLIPCAP" score --results "$fx/blank_results.json" --annotations "$fx/blank_annotations.json" --per-image \
  >"$tmp/out.json" 2>"$tmp/err" || { cat "$tmp/err"; exit 1; }
/usr/bin/python3 - "$fx/blank_expected.json" "$tmp/out.json" <<'PY'
import json, sys
want, got = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
def near(g, w, what):
    assert isinstance(g, float) and abs(g - w) <= 1e-9, "%s: got %r, want %r" % (what, g, w)
assert got["images"] == len(want["per_image"]), got["images"]
for k, v in want["corpus"].items():
    near(got[k], v, k)
for i, scores in want["per_image"].items():
    for k, v in scores.items():
        near(got["per_image"][i][k], v, "image %s %s" % (i, k))
PY
echo "score_blank: ok"
