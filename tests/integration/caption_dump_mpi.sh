#!/usr/bin/env bash
# `mpirun -np 2 clipcap caption --manifest` covers every key exactly once
# and writes the same dump as one process: the same captions and failures
# files line for line, the same index.json (shards are owned by rank
# s % size, and a batch never spans two shards, so each image meets the
# same batch whatever the number of ranks). Also:
#  - a dump started on 1 rank, killed, and finished on 2 ranks equals it;
#  - --splits test,val captions only those splits.
# Reference: the single-process run; the checks are Python + the zstd CLI.
source "$(dirname "$0")/caption_dump_lib.bash"

make_data 24
dump=("$CLIPCAP" caption --manifest "$WORK/man" --store "$WORK/store" --model "$MODEL" --gpt2 "$GPT2" --batch 3)

"${dump[@]}" --out "$WORK/np1" >/dev/null 2>"$WORK/np1.log" || { cat "$WORK/np1.log"; fail "np 1"; }
"${MPI2[@]}" "${dump[@]}" --out "$WORK/np2" >/dev/null 2>"$WORK/np2.log" || { cat "$WORK/np2.log"; fail "np 2"; }
check_dump "$WORK/np2" "$WORK/man"
same_dump "$WORK/np1" "$WORK/np2"
grep -q '^\[r1/2\].*caption.*caption/s' "$WORK/np2.log" || fail "rank 1 reported no progress"

# 1 rank killed while it works, then 2 ranks finish the job
"${dump[@]}" --out "$WORK/mixed" >/dev/null 2>"$WORK/mixed.log" &
pid=$!
for _ in $(seq 200); do [ -d "$WORK/mixed/partial" ] || ! kill -0 "$pid" 2>/dev/null && break; sleep 0.02; done
sleep 0.1
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
"${MPI2[@]}" "${dump[@]}" --out "$WORK/mixed" >/dev/null 2>>"$WORK/mixed.log" || { cat "$WORK/mixed.log"; fail "np 2 resume"; }
same_dump "$WORK/np1" "$WORK/mixed"

# a split filter
"${MPI2[@]}" "${dump[@]}" --splits test,val --out "$WORK/tv" >/dev/null 2>"$WORK/tv.log" || { cat "$WORK/tv.log"; fail "--splits"; }
"$PY" - "$WORK/tv" "$WORK/man" <<'PYEOF'
import json, glob, subprocess, sys
out, man = sys.argv[1], sys.argv[2]
def lines(p): return [json.loads(l) for l in subprocess.run(["zstd", "-dcq", p], check=True, capture_output=True).stdout.decode().splitlines()]
want = sorted(r["key"] for f in sorted(glob.glob(man + "/shard-*.zst")) for r in lines(f)[1:] if r["split"] in ("test", "val"))
got = sorted(r["key"] for f in sorted(glob.glob(out + "/*.zst")) for r in (lines(f)[1:] if "/captions-" in f else lines(f)))
if got != want: sys.exit("--splits test,val: %s vs %s" % (got, want))
if json.load(open(out + "/index.json"))["splits"] != "test,val": sys.exit("index does not record the splits")
print("splits ok: %d keys" % len(got))
PYEOF
echo "caption_dump_mpi: ok"
