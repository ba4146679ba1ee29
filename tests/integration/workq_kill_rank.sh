#!/usr/bin/env bash
# A caption dump under `mpirun -np 2` loses one rank to kill -9 while that
# rank holds an unfinished shard (CLIPCAP_TEST_SLOW_RANK=1:MS, the workq
# test hook, keeps it asleep on the shard it took): mpirun aborts the job.
# The same command run again redoes only the unfinished work (the shards
# finished before the kill keep their files: same inode, same mtime) and
# the dump equals an uninterrupted single-process one.
source "$(dirname "$0")/caption_dump_lib.bash"

make_data 18
"$CLIPCAP" shard --format karpathy --input "$WORK/syn/karpathy/dataset_coco.json" --images-root "$WORK/syn/coco" \
    --gpt2 "$CLIPCAP_FIXTURES/gpt2" --shards 6 --no-image-check --out "$WORK/man6" >/dev/null 2>>"$WORK/shard.log"
dump=("$CLIPCAP" caption --manifest "$WORK/man6" --store "$WORK/store" --model "$MODEL" --gpt2 "$GPT2" --batch 3)
"${dump[@]}" --out "$WORK/ref" >/dev/null 2>"$WORK/ref.log" || { cat "$WORK/ref.log"; fail "reference dump"; }

finals() { ls "$WORK/out"/captions-*.zst 2>/dev/null | wc -l; }
CLIPCAP_TEST_SLOW_RANK=1:60000 "${MPI2[@]}" "${dump[@]}" --out "$WORK/out" >/dev/null 2>"$WORK/killed.log" &
mpirun_pid=$!
# rank 0 finishes every shard but the one rank 1 sleeps on
for _ in $(seq 600); do [ "$(finals)" -ge 5 ] && break; sleep 0.05; done
[ "$(finals)" = 5 ] || { cat "$WORK/killed.log"; fail "expected 5 finished shards while rank 1 sleeps, got $(finals)"; }
rank1=""
for p in $(pgrep -P "$mpirun_pid"); do
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1'; then rank1=$p; fi
done
[ -n "$rank1" ] || fail "rank 1's process not found among mpirun's children"
stat -c '%n %i %Y' "$WORK/out"/captions-*.zst >"$WORK/before.txt"
kill -9 "$rank1"
if wait "$mpirun_pid"; then fail "mpirun exited 0 after a rank was killed"; fi
[ ! -e "$WORK/out/index.json" ] || fail "a dump that lost a rank has an index.json"

"${MPI2[@]}" "${dump[@]}" --out "$WORK/out" >/dev/null 2>"$WORK/rerun.log" || { cat "$WORK/rerun.log"; fail "re-run"; }
same_dump "$WORK/ref" "$WORK/out"
while read -r name inode mtime; do
    [ "$(stat -c '%i %Y' "$name")" = "$inode $mtime" ] || fail "$name was rewritten by the re-run"
done <"$WORK/before.txt"
echo "workq_kill_rank: ok"
