#!/usr/bin/env bash
# `clipcap score --meteor-jar / --spice-jar`: the plumbing to the toolkit's
# Java scorers, with stand-in jars built here from score_java/*.java that
# speak the same protocols (METEOR's -stdio SCORE/EVAL lines, SPICE's
# in.json -> out.json) and check the toolkit's arguments, working directory
# and LC_ALL. Checks that every image's score comes back to its image id,
# that the corpus scores are the jars' own (METEOR's last line; SPICE's
# mean of All.f, NaN -> null with a note), and the errors for a missing jar,
# no java on PATH, a crashing jar and a jar that answers garbage. Expected
# values are computed here in Python from the stand-ins' stated formulas;
# tolerance 1e-12 (Java prints doubles so that they parse back exactly).
# Needs a JDK (javac, jar): Debian package openjdk-17-jdk-headless.
set -euo pipefail
for tool in javac jar java; do
  command -v "$tool" >/dev/null || { echo "score_java: '$tool' not found: install openjdk-17-jdk-headless" >&2; exit 1; }
done
src="$CLIPCAP_SOURCE/tests/integration/score_java"
tmp="$CLIPCAP_TMP/score_java.$$"
rm -rf "$tmp" && mkdir -p "$tmp/classes" "$tmp/meteor" "$tmp/spice"
trap 'rm -rf "$tmp"' EXIT

javac -d "$tmp/classes" "$src/FakeMeteor.java" "$src/FakeSpice.java"
jar --create --file "$tmp/meteor/meteor-1.5.jar" --main-class FakeMeteor -C "$tmp/classes" FakeMeteor.class
jar --create --file "$tmp/spice/spice-1.0.jar" --main-class FakeSpice -C "$tmp/classes" FakeSpice.class

cat > "$tmp/ann.json" <<'JSON'
{"images": [{"id": 3}, {"id": 10}, {"id": 7}],
 "annotations": [
  {"image_id": 10, "id": 1, "caption": "a dog runs on the grass"},
  {"image_id": 3, "id": 2, "caption": "two cats sleep"},
  {"image_id": 10, "id": 3, "caption": "a brown dog"},
  {"image_id": 7, "id": 4, "caption": "a red bus on a street"},
  {"image_id": 3, "id": 5, "caption": "cats on a bed"},
  {"image_id": 7, "id": 6, "caption": "a bus"}]}
JSON
cat > "$tmp/res.json" <<'JSON'
[{"image_id": 10, "caption": "a dog on grass"},
 {"image_id": 7, "caption": "a big red bus parked on the street"},
 {"image_id": 3, "caption": "cats"}]
JSON
# image 7's candidate emptied by the tokenisation: SPICE's f is NaN
sed 's/"cats"/"..."/' "$tmp/res.json" > "$tmp/res_nan.json"

cd "$tmp"
"$CLIPCAP" score --results res.json --annotations ann.json --per-image \
  --meteor-jar meteor/meteor-1.5.jar --spice-jar "$tmp/spice/spice-1.0.jar" > out.json
"$CLIPCAP" score --results res_nan.json --annotations ann.json --per-image \
  --meteor-jar meteor/meteor-1.5.jar --spice-jar spice/spice-1.0.jar > out_nan.json

/usr/bin/python3 - ann.json res.json out.json out_nan.json <<'PY'
import json, math, sys
ann, res, out, out_nan = (json.load(open(p)) for p in sys.argv[1:])
refs = {}
for a in ann["annotations"]:
    refs.setdefault(a["image_id"], []).append(a["caption"])
def near(got, want, what):
    assert got is not None and abs(got - want) <= 1e-12, "%s: got %r, want %r" % (what, got, want)
def check(out, res):
    meteor = spice = 0.0
    for r in res:
        i = r["image_id"]
        hyp = r["caption"].strip(".").split()
        m = len(hyp) / (sum(len(x.split()) for x in refs[i]) + len(refs[i]))
        meteor += m
        p = out["per_image"][str(i)]
        assert p["image_id"] == i
        near(p["METEOR"], m, "METEOR of %d" % i)
        f = p["SPICE"]["All"]["f"]
        if hyp:
            near(f, len(hyp) / 10.0, "SPICE of %d" % i)
            spice += f
        else:
            assert f is None, "SPICE of %d: NaN should be null, got %r" % (i, f)
            spice = math.nan
        near(p["SPICE"]["Object"]["f"], len(refs[i]) / 10.0, "SPICE Object of %d" % i)
    near(out["METEOR"], meteor + 1000, "METEOR")
    if math.isnan(spice):
        assert out["SPICE"] is None and "SPICE is NaN" in out["note"], out
    else:
        near(out["SPICE"], spice / len(res), "SPICE")
        assert "note" not in out, out["note"]
    assert out["images"] == len(res) and isinstance(out["CIDEr"], float)
check(out, res)
check(out_nan, [dict(r, caption="...") if r["caption"] == "cats" else r for r in res])
PY

fails() {  # fails PATTERN ARGS...: exit status 1 and one stderr line, the error, matching PATTERN
  local pattern="$1"; shift
  set +e; env CLIPCAP_LOG=warn "$@" > /dev/null 2> err.txt; local rc=$?; set -e
  if [ "$rc" -ne 1 ] || [ "$(wc -l < err.txt)" -ne 1 ] || ! grep -q -- "$pattern" err.txt; then
    echo "score_java: want exit 1 and '$pattern' from: $*" >&2; echo "got $rc:" >&2; cat err.txt >&2; exit 1
  fi
}
base=(score --results res.json --annotations ann.json)
fails "--meteor-jar nowhere/meteor-1.5.jar: No such file" "$CLIPCAP" "${base[@]}" --meteor-jar nowhere/meteor-1.5.jar
fails "--spice-jar meteor: not a regular file" "$CLIPCAP" "${base[@]}" --spice-jar meteor
# a PATH without java but with the rest of the system (a singleton MPI
# start runs orted and what it needs)
mkdir nojava
for d in /usr/local/bin /usr/bin /bin; do
  for f in "$d"/*; do
    n="${f##*/}"; [ "$n" = java ] || [ -e "nojava/$n" ] || ln -s "$f" "nojava/$n"
  done
done
fails "meteor-1.5.jar: cannot run java: 'java' is not on PATH" \
  env PATH="$tmp/nojava" "$CLIPCAP" "${base[@]}" --meteor-jar meteor/meteor-1.5.jar
fails "meteor-1.5.jar: java exited with status 3 before sending the statistics of image 0: Exception in thread" \
  env FAKE_JAVA_FAIL=crash "$CLIPCAP" "${base[@]}" --meteor-jar meteor/meteor-1.5.jar
fails "meteor-1.5.jar: expected the score of image 0, got 'no score'" \
  env FAKE_JAVA_FAIL=garbage "$CLIPCAP" "${base[@]}" --meteor-jar meteor/meteor-1.5.jar
fails "spice-1.0.jar: java exited with status 1: fake spice: told to crash" \
  env FAKE_JAVA_FAIL=crash "$CLIPCAP" "${base[@]}" --spice-jar spice/spice-1.0.jar
echo "score_java: ok"
