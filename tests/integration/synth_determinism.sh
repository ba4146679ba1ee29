#!/usr/bin/env bash
# `clipcap synth` is a pure function of its options: the same seed gives
# byte-identical trees run to run, across thread counts and under
# `mpirun -np 2`; another seed gives another tree. Also the CLI contract:
# --help, usage errors, refusing a non-empty --out.
set -euo pipefail
t="$CLIPCAP_TMP/synth_determinism.$$"
rm -rf "$t" && mkdir -p "$t"
trap 'rm -rf "$t"' EXIT

"$CLIPCAP" synth --help | grep -q "usage: clipcap synth"
rc=0; "$CLIPCAP" synth --count 3 2>/dev/null || rc=$?
[ "$rc" -eq 2 ] || { echo "missing --out: exit $rc, want 2"; exit 1; }
rc=0; "$CLIPCAP" synth --out "$t/x" --layouts nope 2>/dev/null || rc=$?
[ "$rc" -eq 2 ] || { echo "bad --layouts: exit $rc, want 2"; exit 1; }

"$CLIPCAP" synth --out "$t/a" --seed 3 --bad > "$t/a.summary" 2>/dev/null
OMP_NUM_THREADS=2 "$CLIPCAP" synth --out "$t/b" --seed 3 --bad >/dev/null 2>&1
mpirun --oversubscribe -np 2 "$CLIPCAP" synth --out "$t/m" --seed 3 --bad > "$t/m.summary" 2>/dev/null
"$CLIPCAP" synth --out "$t/c" --seed 4 --bad >/dev/null 2>&1

diff -r "$t/a" "$t/b"
diff -r "$t/a" "$t/m"
# rank 0 alone prints the summary, the same one
diff <(sed "s|$t/a|DIR|" "$t/a.summary") <(sed "s|$t/m|DIR|" "$t/m.summary")
if diff -rq "$t/a" "$t/c" >/dev/null; then echo "seeds 3 and 4 gave the same tree"; exit 1; fi
# no temporary files left behind
if find "$t/a" "$t/m" -name '*.tmp.*' | grep -q .; then echo "temporary files left"; exit 1; fi

rc=0; "$CLIPCAP" synth --out "$t/a" --seed 3 2>/dev/null || rc=$?
[ "$rc" -eq 2 ] || { echo "non-empty --out: exit $rc, want 2"; exit 1; }
"$CLIPCAP" synth --out "$t/a" --seed 3 --bad --force >/dev/null 2>&1
diff -r "$t/a" "$t/b"

# --layouts writes only what it names (plus the two index files), and the
# files it does write are the same bytes as in the full tree
"$CLIPCAP" synth --out "$t/k" --seed 3 --bad --layouts karpathy,cc-tar >/dev/null 2>&1
[ "$(cd "$t/k" && ls | tr '\n' ' ')" = "cc coco karpathy synth_bad.json synth_index.json " ]
[ "$(cd "$t/k/cc" && ls)" = "wds" ]
[ "$(cd "$t/k/coco" && ls | tr '\n' ' ')" = "train2014 val2014 " ]
diff -r "$t/k/cc/wds" "$t/a/cc/wds"
diff -r "$t/k/coco/train2014" "$t/a/coco/train2014"
cmp "$t/k/karpathy/dataset_coco.json" "$t/a/karpathy/dataset_coco.json"

# the summary names every format with its count: 48 = 3 of each of 16
[ "$(grep -o ' 3' <(grep formats: "$t/a.summary") | wc -l)" -eq 16 ]
echo "synth_determinism: ok"
