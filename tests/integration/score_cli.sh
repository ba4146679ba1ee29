#!/usr/bin/env bash
# `clipcap score`: BLEU-1..4, ROUGE-L and CIDEr-D of a COCO results file
# against COCO annotations equal the plain-Python transcription of the COCO
# toolkit (tests/gen/gen_metric_fixtures.py: expected.txt for the corpus,
# expected_per_image.json for --per-image, keyed by image id like the
# toolkit's imgToEval) to 1e-9 (both compute in doubles; only the order of
# sums differs), single process and under mpirun; METEOR and SPICE null
# with a note when no jars are given. Bad input: score_errors.sh; the Java
# scorers: score_java.sh.
. "$CLIPCAP_SOURCE/tests/integration/lib.bash"
fx="$CLIPCAP_FIXTURES/metrics"

same_on_2_ranks "$tmp/out.json" "$CLIPCAP" score --results "$fx/results.json" --annotations "$fx/annotations.json"
"$CLIPCAP" score --results "$fx/results.json" --annotations "$fx/annotations.json" --per-image > "$tmp/per.json"

/usr/bin/python3 - "$fx/expected.txt" "$fx/expected_per_image.json" "$tmp/out.json" "$tmp/per.json" <<'PY'
import json, sys
expected = dict((k, float(v)) for k, v in (line.split() for line in open(sys.argv[1])))
want_img = json.load(open(sys.argv[2]))
out, per = json.load(open(sys.argv[3])), json.load(open(sys.argv[4]))
def near(got, want, what):
    assert isinstance(got, float) and abs(got - want) <= 1e-9, "%s: got %r, want %r" % (what, got, want)
for o in (out, per):
    for k, v in expected.items():
        near(o[k], v, k)
    assert o["METEOR"] is None and o["SPICE"] is None and "METEOR and SPICE not computed" in o["note"], o
    assert o["images"] == 300
assert "per_image" not in out
assert sorted(per["per_image"]) == sorted(want_img), "per-image ids differ"
for i, want in want_img.items():
    got = per["per_image"][i]
    assert got["image_id"] == int(i) and got["METEOR"] is None and got["SPICE"] is None, got
    for k, v in want.items():
        near(got[k], v, "image %s %s" % (i, k))
PY
"$CLIPCAP" score --help | grep -q 'usage: clipcap score'
echo "score_cli: ok"
