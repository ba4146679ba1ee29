#!/usr/bin/env bash
# A JSON syntax error is reported in one form by every reader: shard (its
# own scanner, data/jscan.c) and score (jansson) name the same
# FILE:LINE:COL, COL counting bytes from 1 up to the byte at fault, also
# after multibyte UTF-8 text (where jansson's own column counts characters).
# Expected positions: Python's json module for ASCII (fixtures/data
# expected.json), the offending byte's offset otherwise.
. "$CLIPCAP_SOURCE/tests/integration/lib.bash"
fx="$CLIPCAP_FIXTURES"
printf '[{"image_id": 1, "caption": "a cat"}]' >"$tmp/res.json"

# check FILE LINE:COL: both readers fail with one line naming FILE:LINE:COL:
check() {
  local f=$1 want="$1:$2: " rc
  for cmd in "shard --format coco --input $f --images-root $tmp --gpt2 $fx/gpt2 --out $tmp/man --no-image-check" \
             "score --results $tmp/res.json --annotations $f"; do
    rc=0
    # shellcheck disable=SC2086
    "$CLIPCAP" $cmd >/dev/null 2>"$tmp/err" || rc=$?
    if [ "$rc" -ne 1 ] || [ "$(wc -l <"$tmp/err")" -ne 1 ] || ! grep -qF "error: $want" "$tmp/err"; then
      echo "clipcap $cmd: want exit 1 and '$want', got $rc:"; cat "$tmp/err"; exit 1
    fi
  done
}

cp "$fx/data/coco/annotations/malformed.json" "$tmp/malformed.json"
check "$tmp/malformed.json" "$(/usr/bin/python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["malformed"]; print("%d:%d" % (e["line"], e["column"]))' "$fx/data/expected.json")"

# byte_at FILE NEEDLE: LINE:COL of the first byte of NEEDLE (bytes, Python escapes)
byte_at() {
  /usr/bin/python3 -c 'import sys, ast
d = open(sys.argv[1], "rb").read(); i = d.index(ast.literal_eval("b\"" + sys.argv[2] + "\""))
print("%d:%d" % (d.count(b"\n", 0, i) + 1, i - (d.rfind(b"\n", 0, i) + 1) + 1))' "$1" "$2"
}
printf '{"images": [],\n "annotations": [{"image_id": 1, "id": 1, "caption": "caf\xc3\xa9 \xc3\xa9t\xc3\xa9 \xff"}]}' >"$tmp/utf8.json"
check "$tmp/utf8.json" "$(byte_at "$tmp/utf8.json" '\xff')"
printf '{"images": [], "annotations": [{"image_id": 1, "id": 1, "caption": "\xc3\xa9\xc3\xa9"}, x]}' >"$tmp/token.json"
check "$tmp/token.json" "$(byte_at "$tmp/token.json" 'x]')"
echo "json_positions: ok"
