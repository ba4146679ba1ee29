#!/usr/bin/env bash
# `clipcap score` on bad input: every case exits 1 with one error line that
# names the file and the record (entry K of the results, annotation K of
# the annotations), never a crash: unknown, duplicate and mixed-type image
# ids, non-string captions, non-UTF-8 text and NUL, duplicate
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
# bad_results FILE CONTENT PATTERN: FILE as the results, scored against ann.json, fails with PATTERN
bad_results() { res "$1" "$2"; fails "$3" --results "$1" --annotations ann.json; }
# bad_annotations FILE CONTENT PATTERN: one.json scored against FILE as the annotations fails with PATTERN
bad_annotations() { res "$1" "$2"; fails "$3" --results one.json --annotations "$1"; }

# the results file
bad_results unknown.json '[{"image_id": 1000, "caption": "a dog"},\n {"image_id": 99, "caption": "a cat"}]' \
  "unknown.json: entry 1: image_id 99 is not in the annotations (ann.json has no caption for it)"
fails "unknown.json: entry 1: image_id 99 is not in the annotations" --results unknown.json --annotations ann.json --subset
bad_results dup.json '[{"image_id": 1007, "caption": "a"}, {"image_id": 1000, "caption": "b"}, {"image_id": 1007, "caption": "c"}]' \
  "dup.json: entry 2: image_id 1007 already has a caption (entry 0)"
bad_results utf8.json '[{"image_id": 1000, "caption": "a dog"},\n{"image_id": 1007, "caption": "caf\xe9 chairs"}]' \
  "utf8.json:2:[0-9]*: entry 1: text is not UTF-8: unable to decode byte 0xe9"
bad_results nul.json '[{"image_id": 1000, "caption": "a \\u0000 dog"}]' \
  "nul.json:1:[0-9]*: entry 0: .u0000 is not allowed"
bad_results surrogate.json '[{"image_id": 1000, "caption": "a"}, {"image_id": 1007, "caption": "\\udc00"}]' \
  "surrogate.json:1:[0-9]*: entry 1: invalid Unicode"
bad_results dupkey.json '[{"image_id": 1000, "caption": "a", "caption": "b"}]' \
  "dupkey.json:1:[0-9]*: entry 0: duplicate object key"
bad_results cut.json '[{"image_id": 1000, "caption": "a"}, {"image_id": 1007, "capt' \
  "cut.json:1:[0-9]*: entry 1: premature end of input"
bad_results caption_type.json '[{"image_id": 1000, "caption": ["a dog"]}]' \
  "caption_type.json: entry 0: field 'caption' is not a string"
bad_results no_caption.json '[{"image_id": 1000}]' \
  "no_caption.json: entry 0: field 'caption' is missing"
bad_results id_type.json '[{"image_id": 1000, "caption": "a"}, {"image_id": 1007.0, "caption": "b"}]' \
  "id_type.json: entry 1: field 'image_id' is not an integer or a string"
bad_results id_big.json '[{"image_id": 123456789012345678901234, "caption": "b"}]' \
  "id_big.json:1:[0-9]*: entry 0: too big integer"
bad_results id_mixed.json '[{"image_id": 1000, "caption": "a"}, {"image_id": "1007", "caption": "b"}]' \
  "id_mixed.json: entry 1: field 'image_id' is a string, but the first record's is an integer"
bad_results not_object.json '[{"image_id": 1000, "caption": "a"}, "a dog"]' \
  "not_object.json: entry 1: not an object"
bad_results not_list.json '{"annotations": [{"image_id": 1000, "caption": "a"}]}' \
  "not_list.json: not a JSON array of results"
bad_results none.json '[]' \
  "none.json: no results to score"

# the annotations file
bad_results one.json '[{"image_id": 1000, "caption": "a dog"}]' \
  "ann.json: annotation [0-9]*: image_id [0-9]* has no entry in one.json (299 annotated images have none; --subset"
"$CLIPCAP" score --results one.json --annotations ann.json --subset > subset.json
grep -q '"images": 1,' subset.json
bad_annotations ann_utf8.json '{"annotations": [{"image_id": 1000, "caption": "a dog"},\n {"image_id": 1000, "caption": "\xc3("}]}' \
  "ann_utf8.json:2:[0-9]*: annotation 1: text is not UTF-8"
bad_annotations ann_list.json '[{"image_id": 1000, "caption": "a dog"}]' \
  "ann_list.json: not an object (looking for field 'annotations')"
bad_annotations ann_type.json '{"annotations": {"image_id": 1000, "caption": "a dog"}}' \
  "ann_type.json: field 'annotations' is not an array"
bad_annotations ann_id.json '{"annotations": [{"image_id": 1000, "caption": "a dog"}, {"image_id": null, "caption": "a"}]}' \
  "ann_id.json: annotation 1: field 'image_id' is not an integer or a string"

# files and usage
fails "missing.json" --results missing.json --annotations ann.json
fails "score_errors.[0-9]*: not a regular file" --results one.json --annotations "$tmp"
set +e; "$CLIPCAP" score --results one.json > /dev/null 2>&1; rc=$?; set -e
[ "$rc" -eq 2 ]
echo "score_errors: ok ($n cases)"
