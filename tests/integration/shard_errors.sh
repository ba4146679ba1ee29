#!/usr/bin/env bash
# `clipcap shard` failure behaviour on tests/fixtures/data:
#  - malformed JSON: exit 1 and ONE stderr line naming FILE:LINE:COL (the
#    position Python's json module reports, from expected.json);
#  - a failed run removes the previous index.json (a directory is never a
#    manifest whose index points at shards from another run);
#  - usage errors exit 2 with one line; --help exits 0;
#  - bad records are rejected, counted and listed (rejects.jsonl lines with
#    file, record, reason), the run succeeds, and a reader following
#    docs/manifest.md (expected.json) agrees on the counts.
set -euo pipefail
fx="$CLIPCAP_FIXTURES"
d="$fx/data"
tmp="$CLIPCAP_TMP/shard_errors.$$"
rm -rf "$tmp" && mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
common=(--gpt2 "$fx/gpt2" --images-root "$d/coco" --out "$tmp/m")

# a good run first, so that there is an index to remove
"$CLIPCAP" shard --format coco --input "$d/coco/annotations/captions_train2014.json" "${common[@]}" \
  >"$tmp/ok.json" 2>"$tmp/ok.log"
[ -f "$tmp/m/index.json" ]
[ "$(wc -l < "$tmp/m/rejects.jsonl")" -eq 13 ]
/usr/bin/python3 - "$tmp/m" "$d/expected.json" <<'PY'
import json, sys
m, exp = sys.argv[1], json.load(open(sys.argv[2]))["coco_train"]
idx = json.load(open(f"{m}/index.json"))
assert idx["rejected"]["by_reason"] == exp["rejects"], (idx["rejected"], exp["rejects"])
assert idx["images"] == len(exp["keys"]) and idx["captions"] == sum(map(len, exp["keys"].values()))
for line in open(f"{m}/rejects.jsonl"):
    r = json.loads(line)
    assert r["file"].endswith("captions_train2014.json") and r["record"] and r["reason"] in exp["rejects"], r
PY

line=$(/usr/bin/python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["malformed"]; print("%d:%d" % (e["line"], e["column"]))' "$d/expected.json")
set +e
"$CLIPCAP" shard --format coco --input "$d/coco/annotations/malformed.json" "${common[@]}" >"$tmp/out" 2>"$tmp/err"
rc=$?
set -e
[ $rc -eq 1 ]
[ "$(wc -l < "$tmp/err")" -eq 1 ] || { cat "$tmp/err"; exit 1; }
grep -q "error: .*malformed.json:$line: " "$tmp/err" || { cat "$tmp/err"; exit 1; }
[ ! -s "$tmp/out" ]
[ ! -e "$tmp/m/index.json" ]

# the same under two ranks: non-zero, the position named
set +e
mpirun --oversubscribe -np 2 "$CLIPCAP" shard --format coco --input "$d/coco/annotations/malformed.json" \
  "${common[@]}" >"$tmp/out" 2>"$tmp/err"
rc=$?
set -e
[ $rc -ne 0 ]
grep -q "malformed.json:$line: " "$tmp/err"
[ ! -e "$tmp/m/.shard-tmp" ]   # the failed run's temporary data set is removed

expect_usage() { # message-regex args...
  local re=$1; shift
  set +e
  "$CLIPCAP" shard "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  set -e
  [ $rc -eq 2 ] || { echo "exit $rc for $*"; cat "$tmp/err"; exit 1; }
  grep -q -e "$re" "$tmp/err" || { cat "$tmp/err"; exit 1; }
}
expect_usage "format is required" --input x "${common[@]}"
expect_usage "expected coco, karpathy" --format flickr --input x "${common[@]}"
expect_usage "needs --input" --format coco "${common[@]}"
expect_usage "--shards: '0' is not an integer in 1..99999" --format coco --input x --shards 0 "${common[@]}"
expect_usage "expected SPLIT:FILE" --format coco --input x --write-annotations test "${common[@]}"
"$CLIPCAP" shard --help | grep -q "cc-tar"

# an annotation file for a split that is not in the manifest is an error
set +e
"$CLIPCAP" shard --format coco --input "$d/coco/annotations/captions_train2014.json" "${common[@]}" \
  --write-annotations "val2014:$tmp/val.json" >/dev/null 2>"$tmp/err"
rc=$?
set -e
[ $rc -eq 1 ] && grep -q "split 'val2014' has no images" "$tmp/err"
echo "shard_errors: ok"
