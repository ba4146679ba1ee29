#!/usr/bin/env bash
# Dynamic hand-out of shards (common/core/workq.h) in extract, caption dumps
# and eval, under `mpirun -np 2`:
#  - 3 shards on 2 ranks: every shard is taken by exactly one rank (the
#    per-rank extract summaries list them) and the store dumps equal one
#    process's byte for byte;
#  - rank 1 made slow (CLIPCAP_TEST_SLOW_RANK=1:MS, the test hook that
#    sleeps after each unit it takes): rank 0 takes more of the 6 shards,
#    and the store, the caption dump and the eval results still equal one
#    process's.
# Under the old static rule (shard s on rank s % 2) each rank took 3 of 6
# whatever its speed, and the summaries listed no shards.
source "$(dirname "$0")/caption_dump_lib.bash"

make_data 18
for n in 3 6; do
    "$CLIPCAP" shard --format karpathy --input "$WORK/syn/karpathy/dataset_coco.json" --images-root "$WORK/syn/coco" \
        --gpt2 "$CLIPCAP_FIXTURES/gpt2" --shards "$n" --no-image-check --out "$WORK/man$n" >/dev/null 2>>"$WORK/shard.log"
done
CLIP="$CLIPCAP_FIXTURES/clip/tiny"
extract() { # extract MANIFEST STORE [mpirun...]
    local man=$1 st=$2
    shift 2
    "$@" "$CLIPCAP" extract --manifest "$man" --clip "$CLIP" --store "$st" --threads 1 >/dev/null 2>>"$WORK/extract.log" ||
        { cat "$WORK/extract.log"; fail "extract $st"; }
    "$CLIPCAP" store dump --store "$st" --format jsonl --out "$st.jsonl" 2>/dev/null
}
# shards_taken STORE: "R0 R1 UNION" (counts per rank, sorted union)
shards_taken() {
    "$PY" - "$1" <<'PYEOF'
import json, sys
got = [json.load(open("%s/extract-summary-rank-%05d-of-00002.json" % (sys.argv[1], r)))["shards"] for r in (0, 1)]
print(len(got[0]), len(got[1]), ",".join(map(str, sorted(got[0] + got[1]))))
PYEOF
}

# 3 shards, 2 ranks
extract "$WORK/man3" "$WORK/s1"
extract "$WORK/man3" "$WORK/s2" "${MPI2[@]}"
cmp "$WORK/s1.jsonl" "$WORK/s2.jsonl" || fail "3 shards: 1 rank and 2 ranks dump differently"
read -r a b union < <(shards_taken "$WORK/s2")
[ "$union" = "0,1,2" ] || fail "3 shards: the ranks took $union"
echo "3 shards on 2 ranks: $a + $b"

# 6 shards, rank 1 slow
export CLIPCAP_TEST_SLOW_RANK=1:1500
extract "$WORK/man6" "$WORK/s6_1"
extract "$WORK/man6" "$WORK/s6_2" "${MPI2[@]}"
cmp "$WORK/s6_1.jsonl" "$WORK/s6_2.jsonl" || fail "slow rank: 1 rank and 2 ranks dump differently"
read -r a b union < <(shards_taken "$WORK/s6_2")
[ "$union" = "0,1,2,3,4,5" ] || fail "slow rank: the ranks took $union"
[ "$a" -gt "$b" ] || fail "slow rank 1 took $b shards, fast rank 0 only $a"
echo "6 shards, rank 1 slow: rank 0 took $a, rank 1 $b"

dump=("$CLIPCAP" caption --manifest "$WORK/man6" --store "$WORK/store" --model "$MODEL" --gpt2 "$GPT2" --batch 3)
"${dump[@]}" --out "$WORK/d1" >/dev/null 2>"$WORK/d1.log" || { cat "$WORK/d1.log"; fail "dump np 1"; }
"${MPI2[@]}" "${dump[@]}" --out "$WORK/d2" >/dev/null 2>"$WORK/d2.log" || { cat "$WORK/d2.log"; fail "dump np 2"; }
same_dump "$WORK/d1" "$WORK/d2"
grep -q '^\[r1/2\] info: caption shards: this rank took 1 of 6' "$WORK/d2.log" || {
    grep 'took' "$WORK/d2.log"; fail "caption: slow rank 1 did not take exactly one shard"; }

ev=("$CLIPCAP" eval --manifest "$WORK/man6" --store "$WORK/store" --model "$MODEL" --gpt2 "$GPT2" --split test
    --annotations "$WORK/test_ann.json" --batch 2)
"${ev[@]}" --results "$WORK/r1.json" >"$WORK/e1.json" 2>"$WORK/e1.log" || { cat "$WORK/e1.log"; fail "eval np 1"; }
"${MPI2[@]}" "${ev[@]}" --results "$WORK/r2.json" >"$WORK/e2.json" 2>"$WORK/e2.log" || { cat "$WORK/e2.log"; fail "eval np 2"; }
cmp "$WORK/r1.json" "$WORK/r2.json" || fail "eval: results differ between 1 and 2 ranks"
cmp "$WORK/e1.json" "$WORK/e2.json" || fail "eval: scores differ between 1 and 2 ranks"
echo "workq_balance: ok"
