#!/usr/bin/env bash
# Consolidation survives kill -9 at every step. A store written by
# `mpirun -np 2 clipcap extract` holds generation 1; a run with another
# model is killed (strace fault injection) at its final consolidation's
# first rename (the run's second: the first writes extract-settings.json),
# so its environment stays beside generation 1, which readers still read
# (old dump, pending_environments 1). Then
# `clipcap store consolidate` is killed (strace -e inject) at each step of
# writing, publishing and cleaning up, each time on a fresh copy of that
# store: the store must read as either the old or the new
# generation (never an error, never a mix), and a following consolidate
# must give exactly the uninterrupted consolidation's dump.
source "$(dirname "$0")/extract_lib.bash"
make_manifest "$WORK" 12 --large 0
S="$WORK/store"
"${MPI2[@]}" "$CLIPCAP" extract --manifest "$WORK/man" --clip "$CLIP_TINY" --store "$S" --threads 1 \
    >/dev/null 2>"$WORK/extract.log" || fail "extract: $(tail -3 "$WORK/extract.log")"
"$CLIPCAP" store dump --store "$S" --out "$WORK/old.jsonl" 2>/dev/null

if strace -f -qq -o /dev/null -e trace=rename -e inject=rename:signal=KILL:when=2 "$CLIPCAP" extract \
    --manifest "$WORK/man" --clip "$CLIPCAP_FIXTURES/clip/tiny_gelu" --store "$S" --threads 1 \
    >/dev/null 2>>"$WORK/extract.log"; then
    fail "the injected kill did not stop extract"
fi
[ "$(cat "$S/CURRENT")" = gen-000000000001 ] || fail "CURRENT moved: $(cat "$S/CURRENT")"
"$CLIPCAP" store stats --store "$S" >"$WORK/stats.json" 2>/dev/null || fail "stats after the killed consolidation"
[ "$(jget "$WORK/stats.json" pending_environments)" = 1 ] || fail "pending environments: $(jget "$WORK/stats.json" pending_environments)"
"$CLIPCAP" store dump --store "$S" --out "$WORK/d.jsonl" 2>/dev/null
cmp -s "$WORK/old.jsonl" "$WORK/d.jsonl" || fail "the killed run changed what readers see"

cp -a "$S" "$WORK/clean"
"$CLIPCAP" store consolidate --store "$WORK/clean" >/dev/null 2>&1 || fail "consolidate"
"$CLIPCAP" store dump --store "$WORK/clean" --out "$WORK/new.jsonl" 2>/dev/null
cmp -s "$WORK/old.jsonl" "$WORK/new.jsonl" && fail "the new model's consolidation changed nothing"

# Kill points (syscall:K = its K-th call): writing the new generation's
# files, before each of the three renames (header, generation, CURRENT), and
# while removing the merged environment and the superseded generation.
kills=0
for point in fsync,fdatasync:1 rename:1 rename:2 rename:3 unlink,unlinkat:2 unlink,unlinkat:3 unlink,unlinkat:5 \
    rmdir:1 rmdir:2; do
    sc=${point%:*} k=${point#*:}
    rm -rf "$WORK/k"
    cp -a "$S" "$WORK/k"
    if strace -qq -o /dev/null -e trace="$sc" -e inject="$sc":signal=KILL:when="$k" \
        "$CLIPCAP" store consolidate --store "$WORK/k" >/dev/null 2>&1; then
        echo "no kill at $sc #$k: the consolidation makes fewer such calls"
        continue
    fi
    kills=$((kills + 1))
    "$CLIPCAP" store dump --store "$WORK/k" --out "$WORK/k.jsonl" 2>"$WORK/k.log" \
        || fail "unreadable after a kill at $sc #$k: $(cat "$WORK/k.log")"
    cmp -s "$WORK/k.jsonl" "$WORK/old.jsonl" || cmp -s "$WORK/k.jsonl" "$WORK/new.jsonl" \
        || fail "after a kill at $sc #$k the store is neither generation"
    "$CLIPCAP" store consolidate --store "$WORK/k" >/dev/null 2>"$WORK/k.log" \
        || fail "consolidate after a kill at $sc #$k: $(cat "$WORK/k.log")"
    "$CLIPCAP" store dump --store "$WORK/k" --out "$WORK/k.jsonl" 2>/dev/null
    cmp -s "$WORK/k.jsonl" "$WORK/new.jsonl" || fail "after a kill at $sc #$k and a consolidate: not the new generation"
    ! ls -d "$WORK"/k/rank-* 2>/dev/null || fail "environments left after a kill at $sc #$k and a consolidate"
    [ "$(ls "$WORK/k/packs")" = "$(cat "$WORK/k/CURRENT")" ] || fail "stale generations after $sc #$k: $(ls "$WORK/k/packs")"
done
[ "$kills" -ge 7 ] || fail "only $kills kill points reached"
echo "store_consolidate: ok ($kills kill points)"
