#!/usr/bin/env bash
# `clipcap score`: BLEU-1..4, ROUGE-L and CIDEr-D of a COCO results file
# against COCO annotations equal the plain-Python transcription of the COCO
# toolkit (tests/gen/gen_metric_fixtures.py, expected.txt) to 1e-9, single
# process and under mpirun; per-image scores, null METEOR/SPICE, and the
# errors for a doubled candidate, an image without references and a
# missing file.
set -euo pipefail
fx="$CLIPCAP_FIXTURES/metrics"
tmp="$CLIPCAP_TMP/score_cli.$$"
rm -rf "$tmp" && mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT

"$CLIPCAP" score --results "$fx/results.json" --annotations "$fx/annotations.json" > "$tmp/out.json"
value() { grep -o "\"$1\": [-0-9.e+]*" "$2" | head -1 | awk '{print $2}'; }
while read -r key want; do
  got=$(value "$key" "$tmp/out.json")
  awk -v k="$key" -v g="$got" -v w="$want" 'BEGIN { d = g - w; if (d < 0) d = -d;
    if (g == "" || d > 1e-9) { printf "score_cli: %s = %s, want %s\n", k, g, w; exit 1 } }'
done < "$fx/expected.txt"
grep -q '"METEOR": null' "$tmp/out.json"
grep -q '"SPICE": null' "$tmp/out.json"
grep -q '"images": 300' "$tmp/out.json"

mpirun --oversubscribe -np 2 "$CLIPCAP" score --results "$fx/results.json" --annotations "$fx/annotations.json" > "$tmp/mpi.json"
cmp "$tmp/out.json" "$tmp/mpi.json"

"$CLIPCAP" score --results "$fx/results.json" --annotations "$fx/annotations.json" --per-image > "$tmp/per.json"
[ "$(grep -o '"image_id": ' "$tmp/per.json" | wc -l)" -eq 300 ]

# A second caption for image 1000; an image the annotations do not know.
printf '[{"image_id": 1000, "caption": "a"}, {"image_id": 1000, "caption": "b"}]' > "$tmp/dup.json"
printf '[{"image_id": 5, "caption": "a dog"}]' > "$tmp/unknown.json"
set +e
"$CLIPCAP" score --results "$tmp/dup.json" --annotations "$fx/annotations.json" > /dev/null 2> "$tmp/dup.err"; rc_dup=$?
"$CLIPCAP" score --results "$tmp/unknown.json" --annotations "$fx/annotations.json" > /dev/null 2> "$tmp/unknown.err"; rc_unknown=$?
"$CLIPCAP" score --results "$tmp/missing.json" --annotations "$fx/annotations.json" > /dev/null 2> "$tmp/missing.err"; rc_missing=$?
"$CLIPCAP" score --results "$fx/results.json" > /dev/null 2> "$tmp/usage.err"; rc_usage=$?
set -e
[ "$rc_dup" -eq 1 ] && grep -q "dup.json: image 1000 has more than one caption" "$tmp/dup.err"
[ "$rc_unknown" -eq 1 ] && grep -q "image 5 of .*unknown.json has no reference caption" "$tmp/unknown.err"
[ "$rc_missing" -eq 1 ] && grep -q "missing.json" "$tmp/missing.err"
[ "$rc_usage" -eq 2 ]
"$CLIPCAP" score --help | grep -q 'usage: clipcap score'
echo "score_cli: ok"
