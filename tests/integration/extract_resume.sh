#!/usr/bin/env bash
# extract survives kill -9 at random moments: after several killed runs the
# store always consolidates and reads, and one run to completion gives exactly the
# dump of an uninterrupted run. Nothing committed is encoded twice: the
# store's encoded_total (incremented in the same LMDB transaction as the
# embeddings it counts) equals the number of embeddings, and the final run
# encodes exactly those the killed runs had not committed.
# Every run uses the default batch (a batch is one transaction, so a kill
# can land inside a multi-image transaction) and one encoder thread; the
# killed runs alternate 1 and 2 decode threads, so images become ready in
# another order. The dumps must still be byte-identical (fixed batch slots,
# see extract_ranks.sh). A few multi-megapixel images and one decode thread
# make a run long enough (about a second) for kills to land inside it.
source "$(dirname "$0")/extract_lib.bash"
make_manifest "$WORK" 150 --large 8
args=(--manifest "$WORK/man" --clip "$CLIP_TINY" --encoder-threads 1)

# Kills land uniformly between the end of start-up (MPI init, timed with
# `clipcap version`) and the end of an uninterrupted run.
t0=$(date +%s%N)
"$CLIPCAP" version >/dev/null
startup=$(( ($(date +%s%N) - t0) / 1000000 ))
t0=$(date +%s%N)
"$CLIPCAP" extract "${args[@]}" --threads 1 --store "$WORK/ref" >/dev/null 2>"$WORK/ref.log"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
span=$(( ms - startup > 50 ? ms - startup : 50 ))
"$CLIPCAP" store dump --store "$WORK/ref" --out "$WORK/ref.jsonl" 2>/dev/null
total=$(wc -l <"$WORK/ref.jsonl")

partial=0 prev=0
for i in 1 2 3 4 5 6 7 8 9 10; do
    [ "$partial" -ge 4 ] && break
    "$CLIPCAP" extract "${args[@]}" --threads $(( i % 2 ? 1 : 2 )) --store "$WORK/s" >/dev/null 2>"$WORK/kill$i.log" &
    pid=$!
    # a resumed run only has the uncommitted part left to encode
    left=$(( span * (total - prev) / total ))
    delay=$(( startup + RANDOM % (left > 30 ? left : 30) ))
    sleep "$(( delay / 1000 )).$(printf '%03d' $(( delay % 1000 )))"
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    [ -d "$WORK/s" ] || continue   # killed before the store existed
    # What the killed run committed (the kill may have landed in its own
    # final consolidation) becomes readable once consolidated.
    "$CLIPCAP" store consolidate --store "$WORK/s" >/dev/null 2>"$WORK/cons.log" \
        || fail "cannot consolidate after kill $i: $(cat "$WORK/cons.log")"
    n=0
    if [ -f "$WORK/s/CURRENT" ]; then
        "$CLIPCAP" store stats --store "$WORK/s" >"$WORK/stats.json" 2>"$WORK/stats.log" \
            || fail "store unreadable after kill $i: $(cat "$WORK/stats.log")"
        n=$(jget "$WORK/stats.json" embeddings)
        [ "$(jget "$WORK/stats.json" encoded_total)" = "$n" ] || fail "kill $i: encoded_total != embeddings"
    fi
    [ "$n" -ge "$prev" ] || fail "kill $i: embeddings went down from $prev to $n"
    [ "$n" -gt 0 ] && [ "$n" -lt "$total" ] && partial=$((partial + 1))
    echo "kill $i after ${delay} ms (run takes ${ms} ms): $n of $total committed"
    prev=$n
    if [ "$n" = "$total" ] && [ "$partial" -eq 0 ]; then
        # the kill came after the last commit: nothing left to interrupt
        rm -rf "$WORK/s"
        prev=0
    fi
done
[ "$partial" -ge 1 ] || fail "no kill landed in the middle of a run (runs too fast for the delays?)"

"$CLIPCAP" extract "${args[@]}" --threads 2 --store "$WORK/s" >"$WORK/final.json" 2>"$WORK/final.log"
"$CLIPCAP" store dump --store "$WORK/s" --out "$WORK/s.jsonl" 2>/dev/null
cmp "$WORK/ref.jsonl" "$WORK/s.jsonl" || fail "dump after kills differs from the uninterrupted run's"
"$CLIPCAP" store stats --store "$WORK/s" >"$WORK/stats.json"
[ "$(jget "$WORK/stats.json" encoded_total)" = "$total" ] \
    || fail "encoded_total $(jget "$WORK/stats.json" encoded_total) != $total images: something was encoded twice"
[ "$(jget "$WORK/final.json" skipped_unchanged)" = "$prev" ] || fail "the final run did not skip the $prev committed"
[ $(( prev + $(jget "$WORK/final.json" encoded) )) = "$total" ] || fail "committed + final encodes != $total"
echo "extract_resume: ok ($partial partial kills)"
