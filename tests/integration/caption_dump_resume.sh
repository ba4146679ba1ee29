#!/usr/bin/env bash
# `clipcap caption --manifest` survives kill -9 at any moment:
#  - a run killed several times (at random points within one run's
#    duration, and just after an unfinished shard appears), once with
#    garbage appended to an unfinished shard as a torn write would leave, then run to the end,
#    equals one uninterrupted run: every captions/failures file decodes to
#    the same lines (so the sorted union too), index.json is the same, every
#    key is there exactly once;
#  - re-running a finished dump changes nothing (byte-identical files);
#  - continuing a dump with another model is refused, naming the fingerprint.
# Reference: the uninterrupted run of the same binary; the dump checks are
# Python reading the files with the zstd CLI.
source "$(dirname "$0")/caption_dump_lib.bash"

make_data 100
dump=("$CLIPCAP" caption --manifest "$WORK/man" --store "$WORK/store" --model "$MODEL" --gpt2 "$GPT2" --batch 1)

t0=$("$PY" -c 'import time; print(time.time())')
"${dump[@]}" --out "$WORK/ref" >/dev/null 2>"$WORK/ref.log" || { cat "$WORK/ref.log"; fail "uninterrupted run"; }
# kills land at random points inside the time a whole run takes here, so
# the test keeps killing mid-run on a fast machine as on a loaded one
span=$("$PY" -c "import time; print(time.time() - $t0)")
check_dump "$WORK/ref" "$WORK/man"

out="$WORK/res"
kills=0 partials=0 torn=0
for i in 1 2 3 4 5 6; do
    "${dump[@]}" --out "$out" >/dev/null 2>>"$WORK/res.log" &
    pid=$!
    if [ $((i % 2)) -eq 1 ]; then
        # right after the first unfinished shard appears: inside the dump
        for _ in $(seq 500); do
            ls "$out"/partial/*.zst >/dev/null 2>&1 || ! kill -0 "$pid" 2>/dev/null && break
            sleep 0.005
        done
    else
        sleep "$("$PY" -c "import random; print(round(random.uniform(0.15, 0.85) * $span, 3))")"
    fi
    if kill -9 "$pid" 2>/dev/null; then kills=$((kills + 1)); fi
    wait "$pid" 2>/dev/null || true
    part=$(ls "$out"/partial/*.zst 2>/dev/null | head -1 || true)
    if [ -n "$part" ]; then
        partials=$((partials + 1))
        if [ "$torn" -eq 0 ]; then # what a kill inside write() leaves: half a frame
            head -c 37 "$WORK/ref/captions-00000-of-00004.jsonl.zst" >>"$part"
            torn=1
        fi
    fi
done
"${dump[@]}" --out "$out" >/dev/null 2>>"$WORK/res.log" || { tail -5 "$WORK/res.log"; fail "final resumed run"; }
echo "killed $kills runs, $partials left an unfinished shard, torn tail appended: $torn"
[ "$kills" -ge 1 ] || fail "no run was killed (all finished first)"
[ "$partials" -ge 1 ] || fail "no kill landed inside the dump (no unfinished shard left)"
check_dump "$out" "$WORK/man"
same_dump "$WORK/ref" "$out"
if [ "$torn" -eq 1 ]; then grep -q "cut .* bytes of an unfinished frame" "$WORK/res.log" || fail "torn tail not cut"; fi

# a finished dump run again: nothing changes
cp -a "$WORK/ref" "$WORK/again"
"${dump[@]}" --out "$WORK/again" >/dev/null 2>"$WORK/again.log"
diff -r "$WORK/ref" "$WORK/again" >/dev/null || fail "re-running a finished dump changed it"

# another model into the same directory: refused
set +e
"$CLIPCAP" caption --manifest "$WORK/man" --store "$WORK/store" --model "$MODEL_TF" --gpt2 "$GPT2" \
    --out "$WORK/again" >/dev/null 2>"$WORK/other.log"
rc=$?
set -e
[ "$rc" -ne 0 ] || fail "a dump continued with another model"
grep -q "fingerprint" "$WORK/other.log" || { cat "$WORK/other.log"; fail "refusal does not name the fingerprint"; }
echo "caption_dump_resume: ok"
