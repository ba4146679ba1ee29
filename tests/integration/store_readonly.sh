#!/usr/bin/env bash
# The store as many hosts read it: after `mpirun -np 2 clipcap extract` it is
# one consolidated pack, which `store stats|dump`, `caption --store` and
# `mpirun -np 2 train` read with every write bit removed (chmod -R a-w), as
# root, as a user who may read the files but not write them (root ignores
# permission bits, so `setpriv` to nobody), and from a read-only bind mount
# where this system permits one. Each reader's output equals its output on
# the writable store, nothing in the store changes, and no lock file is
# created. Before the pack, every reader opened every rank's LMDB
# environment with its lock file: "Permission denied" for the read-only user.
# Every path the readers use must be reachable by nobody. A checkout under
# /root (mode 700) is not: then the binary and fixtures are copied into a
# world-readable folder in /tmp (not CLIPCAP_TMP, which may be private), and
# the whole test runs from the copy.
set -euo pipefail
READABLE_COPY=
if [ "$(id -u)" = 0 ] && ! setpriv --reuid=nobody --regid=nogroup --clear-groups \
    test -x "$CLIPCAP" -a -r "$CLIPCAP_FIXTURES/caption/mlp_tuned.pt"; then
    READABLE_COPY=$(mktemp -d /tmp/store_readonly.XXXXXX)
    cp "$CLIPCAP" "$READABLE_COPY/clipcap"
    cp -r "$CLIPCAP_FIXTURES" "$READABLE_COPY/fixtures"
    chmod -R a+rX "$READABLE_COPY"
    echo "nobody cannot reach $CLIPCAP: every reader runs from a copy in $READABLE_COPY"
    CLIPCAP=$READABLE_COPY/clipcap CLIPCAP_FIXTURES=$READABLE_COPY/fixtures CLIPCAP_TMP=$READABLE_COPY
fi
source "$(dirname "$0")/extract_lib.bash"
source "$(dirname "$0")/mount_ns.bash"
# extract_lib's trap removes WORK; this one also restores the write bits
# the test removes and removes the readable copy
cleanup() {
    chmod -R u+w "$WORK" 2>/dev/null || true
    rm -rf "$WORK" ${READABLE_COPY:+"$READABLE_COPY"}
}
trap cleanup EXIT
export OMP_NUM_THREADS=1
chmod 755 "$WORK"
make_manifest "$WORK" 16 --large 0
"${MPI2[@]}" "$CLIPCAP" extract --manifest "$WORK/man" --clip "$CLIP_TINY" --store "$WORK/store" --threads 1 \
    >/dev/null 2>"$WORK/extract.log" || fail "extract: $(tail -3 "$WORK/extract.log")"
caption_gpt2_dir "$WORK/gpt2"

# readers OUT [WRAPPER...]: every reader on the store, outputs under OUT.
readers() {
    local out=$1
    shift
    "$@" "$CLIPCAP" store stats --store "$WORK/store" >"$out/stats.json" 2>"$out/log" || fail "stats ($out): $(cat "$out/log")"
    "$@" "$CLIPCAP" store dump --store "$WORK/store" --out "$out/dump.jsonl" 2>>"$out/log" || fail "dump ($out): $(cat "$out/log")"
    "$@" "$CLIPCAP" store dump --store "$WORK/store" --format npy --out "$out/e.npy" 2>>"$out/log" \
        || fail "npy dump ($out): $(cat "$out/log")"
    "$@" "$CLIPCAP" caption --model "$CLIPCAP_FIXTURES/caption/mlp_tuned.pt" --gpt2 "$WORK/gpt2" --store "$WORK/store" \
        >"$out/captions.jsonl" 2>>"$out/log" || fail "caption ($out): $(cat "$out/log")"
    "$@" "${MPI2[@]}" "$CLIPCAP" train --manifest "$WORK/man" --store "$WORK/store" \
        --gpt2 "$CLIPCAP_FIXTURES/train/gpt2_fullvocab" --mapping mlp --batch 4 --epochs 1 --max-steps 2 --prefix-len 4 --seed 7 \
        --out "$out/train" >/dev/null 2>>"$out/log" || fail "train ($out): $(cat "$out/log")"
}
same() { # same OUT: OUT's outputs equal the writable store's
    for f in stats.json dump.jsonl e.npy e.keys.txt captions.jsonl; do
        cmp "$WORK/rw/$f" "$1/$f" || fail "$1: $f differs from the writable store's"
    done
    for f in "$WORK"/rw/train/*.safetensors; do
        cmp "$f" "$1/train/$(basename "$f")" || fail "$1: train checkpoint $(basename "$f") differs"
    done
}
snapshot() { (cd "$WORK/store" && find . -printf '%p %s %T@ %m\n' | sort); }

mkdir -p "$WORK/rw"
readers "$WORK/rw"
ls "$WORK"/rw/train/*.safetensors >/dev/null || fail "train wrote no checkpoint"

chmod -R a-w "$WORK/store"
snapshot >"$WORK/before.txt"
mkdir -p "$WORK/root_ro"
readers "$WORK/root_ro"
same "$WORK/root_ro"

# A user who can read the store but not write it (run as another user, the
# chmod check above already is one).
if [ "$(id -u)" = 0 ]; then
    mkdir -p "$WORK/nobody/home"
    chown -R nobody "$WORK/nobody"
    readers "$WORK/nobody" setpriv --reuid=nobody --regid=nogroup --clear-groups env HOME="$WORK/nobody/home"
    same "$WORK/nobody"
fi

# A read-only bind mount (needs a mount namespace: not every container
# allows one; the two checks above do not depend on it).
mkdir -p "$WORK/mnt"
if mount_namespace; then
    export -f readers same fail
    export CLIPCAP CLIPCAP_FIXTURES WORK
    "${MOUNT_NS[@]}" bash -c 'set -euo pipefail; MPI2=(mpirun --oversubscribe -np 2)
        mount --bind -o ro "$WORK/store" "$WORK/store"
        ! touch "$WORK/store/probe" 2>/dev/null || { echo "FAIL: the bind mount is writable" >&2; exit 1; }
        readers "$WORK/mnt"; same "$WORK/mnt"' || fail "read-only bind mount"
    echo "read-only bind mount: checked"
else
    echo "read-only bind mount: not permitted here (chmod and setpriv checks done)"
fi

snapshot >"$WORK/after.txt"
cmp "$WORK/before.txt" "$WORK/after.txt" || fail "a reader changed the store: $(diff "$WORK/before.txt" "$WORK/after.txt")"
! find "$WORK/store" -name '*.mdb' | grep -q . || fail "an LMDB file is in the consolidated store"
echo "store_readonly: ok"
