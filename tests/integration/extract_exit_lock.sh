#!/usr/bin/env bash
# extract's exit status, lock and settings check:
#  - every image failed (all files gone): exit 1 after writing the summary
#    (exit 0 before: "0 encoded, N failed" looked like success);
#  - --max-failure-rate: more failures than that fraction exit 1, with what
#    was encoded committed; the default (1) never trips;
#  - a second extract on a store whose lock another process holds stops at
#    once naming the holder; once that holder is killed with -9 the lock is
#    free again (flock);
#  - a run with another --batch than the store's previous run warns.
source "$(dirname "$0")/extract_lib.bash"
export OMP_NUM_THREADS=1
make_manifest "$WORK" 8 --large 0
ex=("$CLIPCAP" extract --manifest "$WORK/man" --clip "$CLIP_TINY")
n=$(jget "$WORK/man/index.json" images)

# a third of the images missing
for f in $(ls "$WORK/syn/coco/train2014"/* "$WORK/syn/coco/val2014"/* | awk 'NR % 3 == 0'); do mv "$f" "$f.gone"; done
set +e
"${ex[@]}" --store "$WORK/s1" --max-failure-rate 0.1 >"$WORK/sum1.json" 2>"$WORK/e1.log"
rc=$?
set -e
[ "$rc" = 1 ] || { cat "$WORK/e1.log"; fail "--max-failure-rate 0.1 exit status $rc"; }
grep -q "error: .* of $n images failed (.*%), more than --max-failure-rate 0.1" "$WORK/e1.log" || { cat "$WORK/e1.log"; fail "no rate message"; }
enc=$(jget "$WORK/sum1.json" encoded)
[ "$enc" -gt 0 ] || fail "nothing encoded"
"$CLIPCAP" store stats --store "$WORK/s1" >"$WORK/st1.json"
[ "$(jget "$WORK/st1.json" embeddings)" = "$enc" ] || fail "the encoded images were not committed"
"${ex[@]}" --store "$WORK/s2" >/dev/null 2>"$WORK/e2.log" || { cat "$WORK/e2.log"; fail "default rate tripped"; }

# every image missing
for f in "$WORK/syn/coco/train2014"/* "$WORK/syn/coco/val2014"/*; do [[ $f == *.gone ]] || mv "$f" "$f.gone"; done
set +e
"${ex[@]}" --store "$WORK/s3" >"$WORK/sum3.json" 2>"$WORK/e3.log"
rc=$?
set -e
[ "$rc" = 1 ] || { cat "$WORK/e3.log"; fail "all images failed, exit status $rc"; }
grep -q "error: every one of the $n images failed" "$WORK/e3.log" || { cat "$WORK/e3.log"; fail "no all-failed message"; }
[ "$(jget "$WORK/sum3.json" failed)" = "$n" ] || fail "no summary before the failure exit"
for f in "$WORK/syn/coco/train2014"/*.gone "$WORK/syn/coco/val2014"/*.gone; do mv "$f" "${f%.gone}"; done

# the lock: another process holds it (one process, so kill -9 frees it)
echo "pid 4242 on host elsewhere" >"$WORK/s2/extract.lock"
"$PY" -c 'import fcntl, sys, time
f = open(sys.argv[1], "a")
fcntl.flock(f, fcntl.LOCK_EX)
open(sys.argv[1] + ".held", "w").close()
time.sleep(120)' "$WORK/s2/extract.lock" >/dev/null 2>&1 &
holder=$!
for _ in $(seq 100); do [ -e "$WORK/s2/extract.lock.held" ] && break; sleep 0.1; done
set +e
"${ex[@]}" --store "$WORK/s2" >/dev/null 2>"$WORK/e4.log"
rc=$?
set -e
[ "$rc" = 1 ] || { cat "$WORK/e4.log"; fail "a second extract ran beside the lock holder (status $rc)"; }
grep -q "extract.lock: another clipcap extract is writing this store (pid 4242 on host elsewhere)" "$WORK/e4.log" \
    || { cat "$WORK/e4.log"; fail "the error does not name the holder"; }
kill -9 "$holder"
wait "$holder" 2>/dev/null || true
"${ex[@]}" --store "$WORK/s2" --batch 4 >/dev/null 2>"$WORK/e5.log" || { cat "$WORK/e5.log"; fail "the lock outlived kill -9"; }
grep -q "was written with --batch 32 --encoder-threads 1, this run uses --batch 4" "$WORK/e5.log" \
    || { cat "$WORK/e5.log"; fail "no warning for another --batch"; }
"${ex[@]}" --store "$WORK/s2" --batch 4 >/dev/null 2>"$WORK/e6.log"
! grep -q "was written with" "$WORK/e6.log" || fail "a warning for the same --batch"
echo "extract_exit_lock: ok"
