#!/usr/bin/env bash
# Errors of a full disk and of unwritable paths carry the system's reason:
#  - extract onto a full file system says "No space left on device" (LMDB
#    reports a short write as EIO; store.c asks the file system);
#  - `store dump` names the errno when it cannot create its output, and when
#    the output's file system is full.
# The full disk is a tmpfs of a few KiB mounted in a private mount
# namespace (root, or an unprivileged user namespace), gone when the command
# ends.
. "$CLIPCAP_SOURCE/tests/integration/extract_lib.bash"

. "$CLIPCAP_SOURCE/tests/integration/mount_ns.bash"
mount_namespace || fail "cannot make a mount namespace for a small tmpfs (needs root or user namespaces)"
# on_full_disk SIZE DIR CMD...: CMD with a SIZE tmpfs on DIR; its stderr into DIR.err
on_full_disk() {
  local size=$1 dir=$2; shift 2
  mkdir -p "$dir"
  local rc=0
  "${MOUNT_NS[@]}" sh -c 'mount -t tmpfs -o "size=$1" tmpfs "$2" && shift 2 && exec "$@"' sh "$size" "$dir" "$@" \
    2>"$dir.err" || rc=$?
  return $rc
}
expect_fail() { # LOG PATTERN: exit 1 happened (caller), LOG's error line matches
  grep -q -e "error: .*$2" "$1" || { echo "want '$2' in:"; cat "$1"; fail "message"; }
}

make_manifest "$WORK" 60
rc=0
on_full_disk 48k "$WORK/full" "$CLIPCAP" extract --manifest "$WORK/man" --clip "$CLIP_TINY" --store "$WORK/full/store" \
  --batch 4 --map-size 1 >/dev/null || rc=$?
[ "$rc" -eq 1 ] || { cat "$WORK/full.err"; fail "extract on a full disk: exit $rc"; }
expect_fail "$WORK/full.err" "rank-00000-of-00001: cannot commit a batch: No space left on device"

"$CLIPCAP" extract --manifest "$WORK/man" --clip "$CLIP_TINY" --store "$WORK/store" >/dev/null 2>"$WORK/extract.log"
rc=0
"$CLIPCAP" store dump --store "$WORK/store" --format jsonl --out "$WORK/missing/x.jsonl" >/dev/null 2>"$WORK/dump.err" || rc=$?
[ "$rc" -eq 1 ] || fail "dump into a missing directory: exit $rc"
expect_fail "$WORK/dump.err" "missing/x.jsonl.tmp.[0-9]*: cannot create: No such file or directory"
rc=0
on_full_disk 4k "$WORK/dfull" "$CLIPCAP" store dump --store "$WORK/store" --format jsonl --out "$WORK/dfull/x.jsonl" \
  >/dev/null || rc=$?
[ "$rc" -eq 1 ] || { cat "$WORK/dfull.err"; fail "dump onto a full disk: exit $rc"; }
expect_fail "$WORK/dfull.err" "x.jsonl.tmp.[0-9]*: write failed: No space left on device"
echo "store_full_disk: ok"
