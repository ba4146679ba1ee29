#!/usr/bin/env bash
# GPT-2 tokenizer throughput: `clipcap tokenize` against the npm
# gpt-3-encoder reference (what a JavaScript user would run), on the same
# generated captions, both single-threaded. Checks that both give the same
# ids, then prints tokens/s of each and the ratio twice: for the whole
# process (start-up, vocabulary load, encoding, JSON output) and for the
# encoding loop alone (as each tool reports it on stderr).
#
#   bench/bench_tokenizer.sh [LINES]      (default 50000)
#   CLIPCAP=path/to/clipcap   (default build/clipcap; this script builds nothing)
set -euo pipefail
cd "$(dirname "$0")/.."
lines="${1:-50000}"
clipcap="${CLIPCAP:-build/clipcap}"
out=bench/out/tokenizer
npm_dir=bench/out/npm   # git-ignored
[ -x "$clipcap" ] || { echo "bench_tokenizer: $clipcap not found (build first or set CLIPCAP)" >&2; exit 1; }
if [ ! -f "$npm_dir/node_modules/gpt-3-encoder/Encoder.js" ]; then
  mkdir -p "$npm_dir"
  npm install --silent --no-audit --no-fund --prefix "$npm_dir" gpt-3-encoder >/dev/null
fi
mkdir -p "$out"
node bench/tokenizer_corpus.js "$lines" > "$out/captions.txt"

now() { date +%s.%N; }
t0=$(now)
NODE_PATH="$npm_dir/node_modules" node bench/tokenizer_ref.js "$out/captions.txt" > "$out/ref.jsonl" 2> "$out/ref.log"
t1=$(now)
OMP_NUM_THREADS=1 CLIPCAP_LOG=info "$clipcap" tokenize --gpt2 tests/fixtures/gpt2 --input "$out/captions.txt" \
  > "$out/clipcap.jsonl" 2> "$out/clipcap.log"
t2=$(now)

tr -d ' ' < "$out/clipcap.jsonl" | cmp -s - "$out/ref.jsonl" || { echo "bench_tokenizer: ids differ from the reference" >&2; exit 1; }
rate() { grep -o '[0-9.]* token/s' "$1" | tail -1 | cut -d' ' -f1; }
tokens=$(tr -cd ',\n' < "$out/ref.jsonl" | wc -c)   # commas + newlines = ids (no empty lines here)
awk -v n="$tokens" -v l="$lines" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v node="$(node --version)" \
    -v re="$(rate "$out/ref.log")" -v ce="$(rate "$out/clipcap.log")" 'BEGIN {
  r = t1 - t0; c = t2 - t1
  printf "captions: %d, tokens: %d (identical ids), 1 thread each\n", l, n
  printf "%-28s %12s %16s %16s\n", "", "process s", "process tok/s", "encode tok/s"
  printf "%-28s %12.3f %16.0f %16.0f\n", "gpt-3-encoder (node " node ")", r, n / r, re
  printf "%-28s %12.3f %16.0f %16.0f\n", "clipcap tokenize", c, n / c, ce
  printf "ratio: %.1fx whole process, %.1fx encoding\n", r / c, ce / re }'
