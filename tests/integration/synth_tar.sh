#!/usr/bin/env bash
# The webdataset shards are valid ustar archives that GNU tar lists and
# extracts without complaint, and hold exactly the img2dataset files of the
# same shard, byte for byte; the TSV has one caption<TAB>url line per sample.
set -euo pipefail
t="$CLIPCAP_TMP/synth_tar.$$"
rm -rf "$t" && mkdir -p "$t"
trap 'rm -rf "$t"' EXIT

"$CLIPCAP" synth --out "$t/s" --count 30 --seed 9 --bad --per-shard 16 --large 0 >/dev/null 2>&1
shards=0
for tarf in "$t"/s/cc/wds/*.tar; do
  shard=$(basename "$tarf" .tar)
  tar -tvf "$tarf" > "$t/list"
  # ustar fixed metadata: 0644 regular files owned by 0/0
  if grep -v '^-rw-r--r-- 0/0 ' "$t/list" | grep -q .; then cat "$t/list"; exit 1; fi
  mkdir -p "$t/x/$shard"
  tar --warning=all -xf "$tarf" -C "$t/x/$shard"
  diff -r "$t/x/$shard" "$t/s/cc/files/$shard"
  # members come as KEY.ext groups in key order
  tar -tf "$tarf" | grep -vqE '^[0-9]{9}\.(jpg|png|webp|txt|json)$' && { echo "odd member name in $tarf"; exit 1; }
  shards=$((shards + 1))
done
[ "$shards" -eq 3 ] || { echo "want 3 shards of 16 for 37 samples, got $shards"; exit 1; }

# 30 good + 7 CC bad samples; every line has exactly one tab
[ "$(wc -l < "$t/s/cc/Train_GCC-training.tsv")" -eq 37 ]
[ "$(awk -F'\t' 'NF != 2' "$t/s/cc/Train_GCC-training.tsv" | wc -l)" -eq 0 ]
# the failed download has a json and a txt but no image
failed=$(grep -l failed_to_download "$t"/s/cc/files/*/*.json)
[ "$(echo "$failed" | wc -l)" -eq 1 ]
key=$(basename "$failed" .json)
[ "$(ls "$(dirname "$failed")/$key".* | wc -l)" -eq 2 ]
echo "synth_tar: ok"
