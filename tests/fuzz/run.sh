#!/usr/bin/env bash
# Builds every tests/fuzz/fuzz_*.c with clang + libFuzzer + ASan/UBSan into
# build-fuzz/ and runs each for SECONDS (default 20), starting from its seed
# corpus under tests/fuzz/corpus/NAME when present. Any crash fails the run.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-20}"
shopt -s nullglob
targets=(tests/fuzz/fuzz_*.c)
if [ ${#targets[@]} -eq 0 ]; then echo "fuzz: no targets"; exit 0; fi
CC=clang cmake -S . -B build-fuzz -DCLIPCAP_FUZZ=ON -DCLIPCAP_SANITIZED_TESTS=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
names=()
for t in "${targets[@]}"; do names+=("$(basename "$t" .c)"); done
cmake --build build-fuzz -j"$(nproc)" --target "${names[@]}" >/dev/null
passed=0
for n in "${names[@]}"; do
  corpus="tests/fuzz/corpus/${n#fuzz_}"
  work="build-fuzz/corpus-${n#fuzz_}"
  mkdir -p "$work"
  args=("$work")
  [ -d "$corpus" ] && args+=("$corpus")
  echo "fuzz: $n for ${secs}s"
  ASAN_OPTIONS=detect_leaks=0 ./build-fuzz/"$n" -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=0 "${args[@]}" 2>build-fuzz/"$n".log || {
    tail -40 build-fuzz/"$n".log; echo "fuzz: $n FAILED"; exit 1; }
  passed=$((passed + 1))
done
echo "fuzz: $passed passed, 0 failed"
