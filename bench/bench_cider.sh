#!/usr/bin/env bash
# Caption scoring time: `clipcap score` against the scorers a user would
# otherwise run, pycocoevalcap's bleu, rouge and cider (CIDEr-D) in plain
# Python. pycocoevalcap itself cannot be installed here (no PyPI), so the
# reference is its plain-Python transcription in
# tests/gen/gen_metric_fixtures.py (same algorithms, dicts and order of
# operations; the fixtures check it against clipcap to 1e-9).
#
# Input: IMAGES images (default 5000) x 5 references and one candidate,
# synthetic captions from a fixed-seed generator (Zipf-distributed words
# over a 2,000-word vocabulary, 8-16 words), lower-case words only, so the
# PTB tokenisation leaves them unchanged and both sides score the same
# strings. One run each, one thread each (the Python scorers are
# single-threaded; clipcap score is too). The reference's time excludes
# the toolkit's tokenisation (a Java CoreNLP process) and JSON loading,
# which favours it; clipcap's "process" time includes its JSON loading and
# PTB tokenisation. Each side runs RUNS times (default 3) and keeps its
# fastest time per part (shared machines make single runs noisy). Checks
# that the scores agree to 1e-9, then prints the times and ratios.
#
#   bench/bench_cider.sh [IMAGES] [RUNS]
#   CLIPCAP=path/to/clipcap   (default build/clipcap; this script builds nothing)
set -euo pipefail
cd "$(dirname "$0")/.."
images="${1:-5000}"
runs="${2:-3}"
clipcap="${CLIPCAP:-build/clipcap}"
out=bench/out/cider
[ -x "$clipcap" ] || { echo "bench_cider: $clipcap not found (build first or set CLIPCAP)" >&2; exit 1; }
mkdir -p "$out"

/usr/bin/python3 - "$images" "$out" <<'PY'
import json, random, sys
n, out = int(sys.argv[1]), sys.argv[2]
rng = random.Random(5000)
vocab = ["w%d%s" % (i, "abcdefghij"[i % 10]) for i in range(2000)]
weights = [1.0 / (i + 1) for i in range(len(vocab))]
def caption(base):
    words = [w if rng.random() < 0.6 else rng.choices(vocab, weights)[0] for w in base]
    return " ".join(words[:rng.randint(8, 16)])
results, annotations = [], []
for i in range(n):
    base = rng.choices(vocab, weights, k=16)
    results.append({"image_id": i, "caption": caption(base)})
    for _ in range(5):
        annotations.append({"image_id": i, "id": len(annotations), "caption": caption(base)})
json.dump(results, open(out + "/results.json", "w"))
json.dump({"annotations": annotations}, open(out + "/annotations.json", "w"))
PY

now() { date +%s.%N; }
process=()
for r in $(seq "$runs"); do
  t0=$(now)
  OMP_NUM_THREADS=1 "$clipcap" score --results "$out/results.json" --annotations "$out/annotations.json" \
    > "$out/clipcap.json" 2> "$out/clipcap.$r.log"
  t1=$(now)
  process+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")
done

/usr/bin/python3 - "$out" "$runs" "${process[@]}" <<'PY'
import json, re, sys, time
sys.path.insert(0, "tests/gen")
import gen_metric_fixtures as ref
out, runs, c_process = sys.argv[1], int(sys.argv[2]), min(map(float, sys.argv[3:]))
results = json.load(open(out + "/results.json"))
gts, res = {}, {}
for a in json.load(open(out + "/annotations.json"))["annotations"]:
    gts.setdefault(a["image_id"], []).append(a["caption"])
for r in results:
    res[r["image_id"]] = [r["caption"]]
times, scores = {}, {}
for name, fn in (("BLEU", ref.bleu), ("ROUGE-L", ref.rouge), ("CIDEr-D", ref.cider)):
    for _ in range(runs):
        t = time.perf_counter()
        scores[name] = fn(gts, res)[0]
        times[name] = min(times.get(name, float("inf")), time.perf_counter() - t)
c = json.load(open(out + "/clipcap.json"))
for k, v in zip(["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4"], scores["BLEU"]):
    assert abs(c[k] - v) <= 1e-9, (k, c[k], v)
assert abs(c["ROUGE_L"] - scores["ROUGE-L"]) <= 1e-9 and abs(c["CIDEr"] - scores["CIDEr-D"]) <= 1e-9, (c, scores)
parts = []
for r in range(1, runs + 1):
    m = re.search(r"n-grams ([0-9.]+) s .*BLEU ([0-9.]+) s, ROUGE-L ([0-9.]+) s, CIDEr-D ([0-9.]+) s",
                  open("%s/clipcap.%d.log" % (out, r)).read())
    parts.append(list(map(float, m.groups())))
t_grams, t_b, t_r, t_c = (min(p[k] for p in parts) for k in range(4))
# the n-gram numbering serves BLEU and CIDEr-D: each is charged all of it
ctimes = {"BLEU": t_grams + t_b, "ROUGE-L": t_r, "CIDEr-D": t_grams + t_c}
print("images: %d x 5 references, 1 thread each, fastest of %d runs; scores identical to 1e-9 (CIDEr-D %.6f)"
      % (len(res), runs, c["CIDEr"]))
print("%-10s %14s %14s %8s" % ("", "python s", "clipcap s", "ratio"))
for k in ("BLEU", "ROUGE-L", "CIDEr-D"):
    print("%-10s %14.3f %14.3f %7.1fx" % (k, times[k], ctimes[k], times[k] / ctimes[k]))
tp, tc = sum(times.values()), t_grams + t_b + t_r + t_c
print("%-10s %14.3f %14.3f %7.1fx" % ("all three", tp, tc, tp / tc))
print("clipcap score, whole process (JSON load, PTB tokenisation, 3 metrics, output): %.3f s; "
      "ratio to the Python scorers alone: %.1fx" % (c_process, tp / c_process))
PY
