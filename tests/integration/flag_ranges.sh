#!/usr/bin/env bash
# Every numeric flag of every stage is range-checked before it is narrowed
# (core/cli.h): the cases of the hardening report (train --epochs
# 2147483648 ran 0 steps, --batch 3000000000 and --prefix-len 4294967300
# became -2147483648, preprocess --size 4294967297 wrote a 1x1 tensor) and,
# for each flag that a stage parses with cli_parse_* (found in its source,
# so new flags are covered), an absurd value: each gives exit 2 and one line
# naming the flag and the value.
. "$CLIPCAP_SOURCE/tests/integration/lib.bash"

# expect_refused STAGE FLAG VALUE [MORE ARGS]
expect_refused() {
  local stage=$1 flag=$2 value=$3 rc=0
  shift 3
  "$CLIPCAP" "$stage" "--$flag=$value" "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  if [ "$rc" -ne 2 ] || [ "$(wc -l <"$tmp/err")" -ne 1 ] ||
     ! grep -qF -- "--$flag: '$value' is not " "$tmp/err"; then
    echo "clipcap $stage --$flag=$value: exit $rc, stderr:"; cat "$tmp/err"; exit 1
  fi
}

expect_refused train epochs 2147483648 --manifest m --store s --gpt2 g --out o --mapping mlp
expect_refused train batch 3000000000 --manifest m --store s --gpt2 g --out o --mapping mlp
expect_refused train prefix-len 4294967300 --manifest m --store s --gpt2 g --out o --mapping mlp
printf 'P6\n1 1\n255\n\0\0\0' >"$tmp/img.ppm"
expect_refused preprocess size 4294967297 "$tmp/img.ppm" --out "$tmp/x.npy"
[ ! -e "$tmp/x.npy" ]

n=0
for src in "$CLIPCAP_SOURCE"/stages/stage_*.c; do
  stage=$(basename "$src" .c); stage=${stage#stage_}
  for flag in $(tr '\n' ' ' <"$src" | grep -oE 'cli_parse_[a-z0-9]+\( *"[a-z0-9-]+"' | sed 's/.*"\(.*\)"/\1/' | sort -u); do
    for value in 99999999999999999999999; do   # other forms: tests/unit/test_cli.c
      expect_refused "$stage" "$flag" "$value"
    done
    n=$((n + 1))
  done
done
[ "$n" -ge 30 ] || { echo "only $n numeric flags found in stages/"; exit 1; }
echo "flag_ranges: ok ($n flags)"
