# Helpers sourced by the bench/*.sh scripts (bash; the caller sets -euo pipefail).

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# bench_build_c BUILD_DIR SOURCE BINARY: compile a bench/*.c program
# against BUILD_DIR/libclipcap_common.a (exits naming the program when that
# library is missing: build first or set BUILD).
bench_build_c() {
  local build=$1 src=$2 bin=$3 name
  name=$(basename "$src" .c)
  [ -f "$build/libclipcap_common.a" ] || { echo "$name: $build/libclipcap_common.a not found (build first or set BUILD)" >&2; exit 1; }
  mkdir -p "$(dirname "$bin")"
  # oneDNN when the build found it (CMakeLists.txt: the CPU backend's bf16)
  local dnnl
  dnnl=$(sed -n 's/^DNNL_LIBRARY:FILEPATH=//p' "$build/CMakeCache.txt" 2>/dev/null | grep -v NOTFOUND || true)
  # shellcheck disable=SC2046  # pkg-config's flags are words
  mpicc -O2 -std=c11 -D_GNU_SOURCE -fopenmp -I"$BENCH_ROOT/common" "$src" "$build/libclipcap_common.a" \
    $(pkg-config --cflags --libs jansson libzstd libuv libwebp libwebpdemux libpng libjpeg lmdb openblas libxxhash) \
    $dnnl -lm -o "$bin"
}

# bench_peak_rss TPID INTERVAL: wait for the background job TPID (a
# /usr/bin/time wrapping the measured command) while sampling its child's
# RssAnon and RssFile from /proc every INTERVAL seconds. The peak splits
# into anonymous memory (the program's own) and file pages (memory maps
# such as LMDB's, page cache the kernel can drop); /usr/bin/time gives only
# the total. Sets PEAK_ANON and PEAK_FILE (KiB); returns TPID's exit status.
bench_peak_rss() {
  local tpid=$1 interval=$2 pid="" a f
  PEAK_ANON=0 PEAK_FILE=0
  while kill -0 "$tpid" 2>/dev/null; do
    [ -n "$pid" ] || pid=$(pgrep -P "$tpid" | head -1 || true)
    if [ -n "$pid" ] && [ -r "/proc/$pid/status" ]; then
      a=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
      f=$(awk '/^RssFile:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
      [ -n "$a" ] && [ "$a" -gt "$PEAK_ANON" ] && PEAK_ANON=$a
      [ -n "$f" ] && [ "$f" -gt "$PEAK_FILE" ] && PEAK_FILE=$f
    fi
    sleep "$interval"
  done
  wait "$tpid"
}
