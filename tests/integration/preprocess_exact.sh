#!/usr/bin/env bash
# `clipcap preprocess` writes exactly the tensor openai/CLIP's _transform
# gives (the .f32 files stored by tests/gen/gen_image_fixtures.py from
# Pillow + torchvision): the .npy payload must be byte-identical. Then the
# per-image errors: one line naming the file, exit status 1, no crash; and
# the same run under mpirun -np 2 writes the same bytes.
set -euo pipefail
fx="$CLIPCAP_FIXTURES/image"
tmp="$CLIPCAP_TMP/preprocess_exact.$$"
rm -rf "$tmp"; mkdir -p "$tmp"
n=0
for name in jpeg_baseline_down png_rgba_down webp_lossy; do
  src=$(awk -v n="$name" '$1=="ok" && $2==n {print $3}' "$fx/manifest.txt")
  "$CLIPCAP" preprocess "$fx/$src" --size 32 --out "$tmp/$name.npy" >"$tmp/$name.json"
  grep -q '"size": 32' "$tmp/$name.json"
  # .npy = 128-byte header (numpy pads to 64) + raw little-endian float32
  bytes=$((3 * 32 * 32 * 4))
  tail -c "$bytes" "$tmp/$name.npy" | cmp - "$fx/expected/$name.f32"
  [ "$(stat -c %s "$tmp/$name.npy")" -eq $((bytes + 128)) ]
  n=$((n + 1))
done
# Format comes from the bytes: a PNG named .jpg.
"$CLIPCAP" preprocess "$fx/src/png_named_jpg.jpg" --size 32 --out "$tmp/named.npy" | grep -q '"format": "png"'
# Fast mode: reduced-DCT decode of the 1000x920 JPEG (1/4 for K=1, 1/2 for K=2).
"$CLIPCAP" preprocess "$fx/src/jpeg_large_fast.jpg" --size 224 --out "$tmp/f1.npy" --fast-resize \
  | grep -q '"decoded_width": 250, "decoded_height": 230'
"$CLIPCAP" preprocess "$fx/src/jpeg_large_fast.jpg" --size 224 --out "$tmp/f2.npy" --fast-resize=2 \
  | grep -q '"decoded_width": 500, "decoded_height": 460'
# Errors: exit 1, one line on stderr naming the file and the reason.
for bad in truncated.jpg empty.jpg bomb.png gif_named.jpg; do
  set +e
  "$CLIPCAP" preprocess "$fx/bad/$bad" --size 32 --out "$tmp/bad.npy" 2>"$tmp/err" >/dev/null
  rc=$?
  set -e
  [ "$rc" -eq 1 ] || { echo "$bad: exit $rc"; cat "$tmp/err"; exit 1; }
  grep -q "bad/$bad" "$tmp/err"
  [ "$(wc -l <"$tmp/err")" -eq 1 ]
  [ ! -e "$tmp/bad.npy" ]
done
"$CLIPCAP" preprocess "$fx/src/jpeg_exact.jpg" --size 32 --out "$tmp/lim.npy" --max-pixels 1000 2>"$tmp/err" && exit 1
grep -q "exceeds the limit" "$tmp/err"
# Usage errors exit 2 or 1 with a message, --help exits 0.
"$CLIPCAP" preprocess --help | grep -q "usage: clipcap preprocess"
# Two ranks: rank 0 does the single image, the result is the same.
mpirun --oversubscribe -np 2 "$CLIPCAP" preprocess "$fx/src/webp_lossy.webp" --size 32 --out "$tmp/mpi.npy" >/dev/null
cmp "$tmp/mpi.npy" "$tmp/webp_lossy.npy"
rm -rf "$tmp"
echo "preprocess_exact: ok ($n tensors byte-identical to torchvision)"
