#!/usr/bin/env bash
# Peak resident memory of `clipcap extract` on a large synthetic corpus and
# on one ten times smaller: the pipeline holds a bounded number of images
# (2*batch+16 slots), so the peak must not grow with the corpus. ClipCap's
# reference (parse_coco.py) keeps every embedding in a Python list until it
# pickles them at the end, i.e. it grows by N*D*4 bytes plus per-object
# overhead; it needs the openai/CLIP weights and torch on a GPU, so this
# script reports that figure as arithmetic, not as a measurement.
#
# usage: bench/bench_extract_rss.sh [N=50000] [WORKDIR]
# env:   CLIPCAP (default build/clipcap), CLIP_DIR (default the tiny fixture),
#        BATCH (64), THREADS (2)
# Takes minutes (synth dominates); never part of the tests.
set -euo pipefail
N=${1:-50000}
SMALL=$((N / 10))
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.bash"
C=${CLIPCAP:-$ROOT/build/clipcap}
CLIP=${CLIP_DIR:-$ROOT/tests/fixtures/clip/tiny}
W=${2:-$(mktemp -d)}  # scratch work dir unless one is given
BATCH=${BATCH:-64}
THREADS=${THREADS:-2}
mkdir -p "$W"

measure() { # measure COUNT -> one JSON line
    local n=$1 d="$W/n$1"
    if [ ! -f "$d/man/index.json" ]; then
        rm -rf "$d"
        "$C" synth --out "$d/syn" --count "$n" --layouts cc-tar --per-shard 1000 --large 0 >/dev/null 2>"$d.synth.log"
        "$C" shard --format cc-tar --images-root "$d/syn/cc/wds" --gpt2 "$ROOT/tests/fixtures/gpt2" \
            --shards 16 --out "$d/man" >/dev/null 2>"$d.shard.log"
    fi
    rm -rf "$d/store"
    /usr/bin/time -f "%M %e" -o "$d.time" "$C" extract --manifest "$d/man" --clip "$CLIP" --store "$d/store" \
        --batch "$BATCH" --threads "$THREADS" --encoder-threads 1 >"$d.summary.json" 2>"$d.extract.log" &
    # anonymous memory is the pipeline's, file pages LMDB's map of the store
    bench_peak_rss $! 0.1
    local anon=$PEAK_ANON file=$PEAK_FILE
    read -r kb secs <"$d.time"
    local enc dim
    enc=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["encoded"])' "$d.summary.json")
    dim=$("$C" store stats --store "$d/store" | /usr/bin/python3 -c 'import json,sys; print(list(json.load(sys.stdin)["dims"])[0])')
    echo "{\"images\": $n, \"encoded\": $enc, \"peak_rss_mib\": $((kb / 1024)), \"peak_anon_mib\": $((anon / 1024)), \"peak_file_mib\": $((file / 1024)), \"seconds\": $secs, \"dim\": $dim}"
    echo "$kb $anon" >"$d.rss"
}

small=$(measure "$SMALL")
echo "$small"
large=$(measure "$N")
echo "$large"
read -r rs as <"$W/n$SMALL.rss"
read -r rl al <"$W/n$N.rss"
dim=$(echo "$large" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["dim"])')
/usr/bin/python3 -c 'import sys
rs, rl, n, dim, a_s, a_l = map(int, sys.argv[1:7])
print("peak RSS ratio %d images / %d images: %.2f; anonymous memory only: %.2f (1.00 = bounded;"
      " the rest is LMDB map pages, i.e. page cache)" % (n, n // 10, rl / rs, a_l / max(a_s, 1)))
print("an in-memory list of the %d embeddings alone (dim %d, as float32): %.1f MiB; at ViT-B/32 dim 512: %.1f MiB" % (n, dim, n * dim * 4 / 2**20, n * 512 * 4 / 2**20))' "$rs" "$rl" "$N" "$dim" "$as" "$al"
echo "work dir: $W"
