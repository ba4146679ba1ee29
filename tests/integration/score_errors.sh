#!/usr/bin/env bash
# `clipcap score` on bad input: every case exits 1 with one error line that
# names the file and the record (entry K of the results, annotation K of
# the annotations), never a crash: unknown, duplicate and mixed-type image
# ids, empty and non-string captions, non-UTF-8 text and NUL, duplicate
# keys, cut-off JSON, wrong JSON types, annotated images without a result
# (allowed by --subset, which then scores only the results' images, like
# the toolkit), missing files and bad usage.
set -euo pipefail
fx="$CLIPCAP_FIXTURES/metrics"
tmp="$CLIPCAP_TMP/score_errors.$$"
rm -rf "$tmp" && mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
cp "$fx/annotations.json" ann.json

n=0
fails() {  # fails PATTERN ARGS...: exit status 1 and one stderr line, the error, matching PATTERN
  local pattern="$1"; shift
  set +e; CLIPCAP_LOG=warn "$CLIPCAP" score "$@" > out.json 2> err.txt; local rc=$?; set -e
  if [ "$rc" -ne 1 ] || [ "$(wc -l < err.txt)" -ne 1 ] || ! grep -q -- "$pattern" err.txt; then
    echo "score_errors: want exit 1 and '$pattern' from: score $*" >&2; echo "got $rc:" >&2; cat err.txt >&2; exit 1
  fi
  n=$((n + 1))
}
res() { printf '%b' "$2" > "$1"; }  # res FILE CONTENT (printf escapes: \xff)

# the results file
res unknown.json '[{"image_id": 1000, "caption": "a dog"},\n {"image_id": 99, "caption": "a cat"}]'
fails "unknown.json: entry 1: image_id 99 is not in the annotations (ann.json has no caption for it)" \
  --results unknown.json --annotations ann.json
fails "unknown.json: entry 1: image_id 99 is not in the annotations" --results unknown.json --annotations ann.json --subset
res dup.json '[{"image_id": 1007, "caption": "a"}, {"image_id": 1000, "caption": "b"}, {"image_id": 1007, "caption": "c"}]'
fails "dup.json: entry 2: image_id 1007 already has a caption (entry 0)" --results dup.json --annotations ann.json
res empty.json '[{"image_id": 1000, "caption": "a dog"}, {"image_id": 1007, "caption": " \\t "}]'
fails "empty.json: entry 1: field 'caption' is empty" --results empty.json --annotations ann.json
res utf8.json '[{"image_id": 1000, "caption": "a dog"},\n{"image_id": 1007, "caption": "caf\xe9 chairs"}]'
fails "utf8.json: entry 1: line 2, column [0-9]*: text is not UTF-8: unable to decode byte 0xe9" \
  --results utf8.json --annotations ann.json
res nul.json '[{"image_id": 1000, "caption": "a \\u0000 dog"}]'
fails "nul.json: entry 0: line 1, column [0-9]*: .u0000 is not allowed" --results nul.json --annotations ann.json
res surrogate.json '[{"image_id": 1000, "caption": "a"}, {"image_id": 1007, "caption": "\\udc00"}]'
fails "surrogate.json: entry 1: line 1, column [0-9]*: invalid Unicode" --results surrogate.json --annotations ann.json
res dupkey.json '[{"image_id": 1000, "caption": "a", "caption": "b"}]'
fails "dupkey.json: entry 0: line 1, column [0-9]*: duplicate object key" --results dupkey.json --annotations ann.json
res cut.json '[{"image_id": 1000, "caption": "a"}, {"image_id": 1007, "capt'
fails "cut.json: entry 1: line 1, column [0-9]*: premature end of input" --results cut.json --annotations ann.json
res caption_type.json '[{"image_id": 1000, "caption": ["a dog"]}]'
fails "caption_type.json: entry 0: field 'caption' is not a string" --results caption_type.json --annotations ann.json
res no_caption.json '[{"image_id": 1000}]'
fails "no_caption.json: entry 0: field 'caption' is missing" --results no_caption.json --annotations ann.json
res id_type.json '[{"image_id": 1000, "caption": "a"}, {"image_id": 1007.0, "caption": "b"}]'
fails "id_type.json: entry 1: field 'image_id' is not an integer or a string" --results id_type.json --annotations ann.json
res id_big.json '[{"image_id": 123456789012345678901234, "caption": "b"}]'
fails "id_big.json: entry 0: line 1, column [0-9]*: too big integer" --results id_big.json --annotations ann.json
res id_mixed.json '[{"image_id": 1000, "caption": "a"}, {"image_id": "1007", "caption": "b"}]'
fails "id_mixed.json: entry 1: field 'image_id' is a string, but the first record's is an integer" \
  --results id_mixed.json --annotations ann.json
res not_object.json '[{"image_id": 1000, "caption": "a"}, "a dog"]'
fails "not_object.json: entry 1: not an object" --results not_object.json --annotations ann.json
res not_list.json '{"annotations": [{"image_id": 1000, "caption": "a"}]}'
fails "not_list.json: not a JSON array of results" --results not_list.json --annotations ann.json
res none.json '[]'
fails "none.json: no results to score" --results none.json --annotations ann.json

# the annotations file
res one.json '[{"image_id": 1000, "caption": "a dog"}]'
fails "ann.json: annotation [0-9]*: image_id [0-9]* has no entry in one.json (299 annotated images have none; --subset" \
  --results one.json --annotations ann.json
"$CLIPCAP" score --results one.json --annotations ann.json --subset > subset.json
grep -q '"images": 1,' subset.json
res ann_utf8.json '{"annotations": [{"image_id": 1000, "caption": "a dog"},\n {"image_id": 1000, "caption": "\xc3("}]}'
fails "ann_utf8.json: annotation 1: line 2, column [0-9]*: text is not UTF-8" --results one.json --annotations ann_utf8.json
res ann_empty.json '{"annotations": [{"image_id": 1000, "caption": ""}]}'
fails "ann_empty.json: annotation 0: field 'caption' is empty" --results one.json --annotations ann_empty.json
res ann_list.json '[{"image_id": 1000, "caption": "a dog"}]'
fails "ann_list.json: not an object (looking for field 'annotations')" --results one.json --annotations ann_list.json
res ann_type.json '{"annotations": {"image_id": 1000, "caption": "a dog"}}'
fails "ann_type.json: field 'annotations' is not an array" --results one.json --annotations ann_type.json
res ann_id.json '{"annotations": [{"image_id": 1000, "caption": "a dog"}, {"image_id": null, "caption": "a"}]}'
fails "ann_id.json: annotation 1: field 'image_id' is not an integer or a string" --results one.json --annotations ann_id.json

# files and usage
fails "missing.json" --results missing.json --annotations ann.json
fails "score_errors.[0-9]*: not a regular file" --results one.json --annotations "$tmp"
set +e; "$CLIPCAP" score --results one.json > /dev/null 2>&1; rc=$?; set -e
[ "$rc" -eq 2 ]
echo "score_errors: ok ($n cases)"
