#!/usr/bin/env bash
# `clipcap tokenize`: the reference ids (tests/fixtures/bpe, from the npm
# gpt-3-encoder) from a file and from stdin, single process and under
# mpirun, an exact encode -> decode round trip, and bad input reported with
# its line number, kept in line order and turned into a non-zero exit.
. "$CLIPCAP_SOURCE/tests/integration/lib.bash"
fx="$CLIPCAP_FIXTURES"

same_on_2_ranks "$tmp/ids.jsonl" "$CLIPCAP" tokenize --gpt2 "$fx/gpt2" --input "$fx/bpe/corpus.txt"
# The reference writes arrays without spaces; ours are "[1, 2]".
tr -d ' ' < "$tmp/ids.jsonl" | cmp - "$fx/bpe/ids.jsonl"
head -1000 "$fx/bpe/corpus.txt" | "$CLIPCAP" tokenize --gpt2 "$fx/gpt2" > "$tmp/stdin.jsonl"
head -1000 "$tmp/ids.jsonl" | cmp - "$tmp/stdin.jsonl"

# Round trip, byte for byte (the corpus holds \r, NUL, tabs, emoji).
"$CLIPCAP" tokenize --gpt2 "$fx/gpt2" --decode --input "$tmp/ids.jsonl" > "$tmp/text.txt"
cmp "$tmp/text.txt" "$fx/bpe/corpus.txt"

# The example of the documentation, and "!" = token 0.
[ "$(printf 'a cat\n!\n' | "$CLIPCAP" tokenize --gpt2 "$fx/gpt2")" = "$(printf '[64, 3797]\n[0]')" ]

# Invalid UTF-8 on line 2 at byte 5: reported, `null` in its place, the
# other lines still encoded, exit status 1.
printf 'ok line\nabcde\xff tail\nlast\n' > "$tmp/bad.txt"
set +e
"$CLIPCAP" tokenize --gpt2 "$fx/gpt2" < "$tmp/bad.txt" > "$tmp/bad.out" 2> "$tmp/bad.err"
rc=$?
set -e
[ "$rc" -eq 1 ]
grep -q 'stdin:2: invalid UTF-8 at byte 5' "$tmp/bad.err"
grep -q '1 of 3 lines rejected' "$tmp/bad.err"
[ "$(wc -l < "$tmp/bad.out")" -eq 3 ]
[ "$(sed -n 2p "$tmp/bad.out")" = "null" ]
[ "$(sed -n 3p "$tmp/bad.out")" = "$(printf 'last\n' | "$CLIPCAP" tokenize --gpt2 "$fx/gpt2")" ]

# Decoding: an unknown id and a malformed array, named by file and line.
printf '[64, 3797]\n[64, 99999]\n[1, "x"]\nnot json\n' > "$tmp/bad.ids"
set +e
"$CLIPCAP" tokenize --gpt2 "$fx/gpt2" --decode --input "$tmp/bad.ids" > "$tmp/dec.out" 2> "$tmp/dec.err"
rc=$?
set -e
[ "$rc" -eq 1 ]
grep -q "$tmp/bad.ids:2: token 1: unknown id 99999" "$tmp/dec.err"
grep -q "$tmp/bad.ids:3: token 1 is not a 32-bit integer" "$tmp/dec.err"
grep -q "$tmp/bad.ids:4: " "$tmp/dec.err"
[ "$(head -1 "$tmp/dec.out")" = "a cat" ]

# Usage errors and a missing tokenizer directory.
set +e
"$CLIPCAP" tokenize > /dev/null 2> "$tmp/usage.err"; rc_usage=$?
"$CLIPCAP" tokenize --gpt2 "$tmp/nowhere" < /dev/null 2> "$tmp/dir.err"; rc_dir=$?
set -e
[ "$rc_usage" -eq 2 ] && grep -q -- '--gpt2 DIR is required' "$tmp/usage.err"
[ "$rc_dir" -eq 1 ] && grep -q "$tmp/nowhere: neither vocab.json" "$tmp/dir.err"
"$CLIPCAP" tokenize --help | grep -q 'usage: clipcap tokenize'
echo "tokenize_cli: ok"
