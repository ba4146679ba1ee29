#!/usr/bin/env bash
# `clipcap shard` on a `clipcap synth --bad` data set in all four layouts:
#  - one rank and `mpirun -np 2` write byte-identical manifests (index,
#    shards, rejects, annotation files), and a repeated run is identical;
#  - so does `mpirun -np 2` with the data set spilled one image per chunk
#    and cut into one bucket per sampled key (CLIPCAP_SHARD_SPILL_BYTES=1,
#    data/ds_spill.h), and its temporary folder is gone afterwards;
#  - the token ids in the shards are exactly what `clipcap tokenize` gives
#    for the same captions (the tokenizer itself is checked against the npm
#    reference by tokenize_cli.sh);
#  - index.json's token statistics equal a Python recomputation from the
#    shards (exact count/max/max_seq_len, mean/std to 1e-12 relative);
#  - every bad record synth injected that shard can see (missing/empty image,
#    empty or non-UTF-8 caption, duplicate id, failed download) is in
#    rejects.jsonl under its key, and the manifest keeps no such key.
. "$CLIPCAP_SOURCE/tests/integration/lib.bash"
fx="$CLIPCAP_FIXTURES"
export OMP_NUM_THREADS=2

"$CLIPCAP" synth --out "$tmp/syn" --count 24 --bad >/dev/null 2>"$tmp/synth.log"
s="$tmp/syn"
gpt2="$fx/gpt2"

run_shard() { # NAME RANKS OUT args...
  local name=$1 ranks=$2 out=$3; shift 3
  on_ranks "$ranks" "$CLIPCAP" shard --gpt2 "$gpt2" --shards 3 --out "$out" "$@" >"$out.summary" 2>"$out.log" || {
    echo "shard $name ($ranks ranks) failed:"; cat "$out.log"; exit 1; }
}

check_same() { # DIR_A DIR_B
  local f
  for f in "$1"/*; do
    case "$f" in *summary.json) continue ;; esac   # names its own --out
    cmp "$f" "$2/$(basename "$f")"
  done
  [ "$(ls "$1" | wc -l)" -eq "$(ls "$2" | wc -l)" ]
}

formats=(coco karpathy cc-files cc-tar)
for fmt in "${formats[@]}"; do
  case $fmt in
    coco) args=(--format coco --input "$s/coco/annotations/captions_train2014.json"
                --input "$s/coco/annotations/captions_val2014.json" --images-root "$s/coco")
          ann=val2014 ;;
    karpathy) args=(--format karpathy --input "$s/karpathy/dataset_coco.json" --images-root "$s/coco"
                    --splits train,restval,test)
              ann=test ;;
    cc-files) args=(--format cc-files --input "$s/cc/Train_GCC-training.tsv" --images-root "$s/cc/files"); ann=train ;;
    cc-tar) args=(--format cc-tar --input "$s/cc/Train_GCC-training.tsv" --images-root "$s/cc/wds"); ann=train ;;
  esac
  for run in np1 np2 again spill; do
    mkdir -p "$tmp/$fmt"
    ranks=1; [ $run = np2 ] || [ $run = spill ] && ranks=2
    spill=; [ $run = spill ] && spill=1
    CLIPCAP_SHARD_SPILL_BYTES=$spill run_shard "$fmt" $ranks "$tmp/$fmt/$run" "${args[@]}" \
      --write-annotations "$ann:$tmp/$fmt/$run/ann.json"
    [ ! -e "$tmp/$fmt/$run/.shard-tmp" ]
  done
  check_same "$tmp/$fmt/np1" "$tmp/$fmt/np2"
  check_same "$tmp/$fmt/np1" "$tmp/$fmt/again"
  check_same "$tmp/$fmt/np1" "$tmp/$fmt/spill"
  grep -Eq 'in [0-9]{2,} bucket\(s\)' "$tmp/$fmt/spill.log"   # the spill path was taken
  [ "$(wc -l < "$tmp/$fmt/np2.summary")" -eq 1 ]   # rank 0 alone prints the summary

  # captions and ids out of the shards, in manifest order
  for f in "$tmp/$fmt/np1"/shard-*.jsonl.zst; do zstd -dcq "$f"; done > "$tmp/$fmt/records.jsonl"
  /usr/bin/python3 - "$tmp/$fmt" "$s/synth_bad.json" "$fmt" <<'PY'
import json, math, sys
d, bad_path, fmt = sys.argv[1], sys.argv[2], sys.argv[3]
caps, ids, keys, kept_caps = [], [], set(), {}
for line in open(f"{d}/records.jsonl", encoding="utf-8"):
    r = json.loads(line)
    if "format" in r:
        continue
    keys.add(r["key"])
    kept_caps[r["key"]] = r["captions"]
    assert len(r["captions"]) == len(r["tokens"]) > 0
    for c, t in zip(r["captions"], r["tokens"]):
        assert "\n" not in c
        caps.append(c)
        ids.append(t)
with open(f"{d}/captions.txt", "w", encoding="utf-8") as f:
    f.write("".join(c + "\n" for c in caps))
with open(f"{d}/ids.jsonl", "w") as f:
    f.write("".join(json.dumps(t) + "\n" for t in ids))
idx = json.load(open(f"{d}/np1/index.json"))
n = len(ids)
lens = [len(t) for t in ids]
mean = sum(lens) / n
std = math.sqrt(sum((x - mean) ** 2 for x in lens) / (n - 1))
tok = idx["tokens"]
assert tok["count"] == n == idx["captions"], (tok, n)
assert tok["max"] == max(lens)
assert abs(tok["mean"] - mean) <= 1e-12 * mean and abs(tok["std"] - std) <= 1e-12 * std, (tok, mean, std)
assert tok["max_seq_len"] == min(int(mean + std * 10), max(lens)), tok
assert idx["images"] == len(keys) == sum(s["images"] for s in idx["shards"])
# the rejects synth injected and shard can detect
layout = {"coco": "coco", "karpathy": "karpathy", "cc-files": "cc-files", "cc-tar": "cc-tar"}[fmt]
visible = {"missing_image", "empty_caption", "duplicate_id", "zero_length", "non_utf8_caption", "failed_download"}
rejects = [json.loads(l) for l in open(f"{d}/np1/rejects.jsonl", encoding="utf-8")]
text = "\n".join(json.dumps(r) for r in rejects)
want_layouts = {layout} | ({"cc-tsv"} if fmt.startswith("cc") else set())
for b in json.load(open(bad_path))["records"]:
    if b["layout"] not in want_layouts or b["kind"] not in visible:
        continue
    key = str(b["id"])
    caption_kind = b["kind"] in ("empty_caption", "non_utf8_caption")
    reason = {"empty_caption": "empty_caption", "non_utf8_caption": "invalid_utf8", "duplicate_id": "duplicate_key",
              "zero_length": "missing_image", "missing_image": "missing_image",
              "failed_download": "download_failed"}[b["kind"]]
    assert idx["rejected"]["by_reason"].get(reason, 0) >= 1, (b, "no reject of reason", reason)
    if caption_kind and not fmt.startswith("cc"):
        # COCO/Karpathy: the image keeps its other captions, the bad one is gone
        assert key in keys and all(c.strip() for c in kept_caps[key]), (b, "bad caption kept")
        continue
    if b["kind"] != "duplicate_id":   # the first of two duplicates is kept
        assert key not in keys, (b, "kept")
    needle = f"(id {key})" if fmt == "coco" else (f"(cocoid {key})" if fmt == "karpathy" else key)
    assert needle in text, (b, "not rejected")
total = sum(idx["rejected"]["by_reason"].values())
assert total == idx["rejected"]["total"] == len(rejects)
print(f"{fmt}: {len(keys)} images, {n} captions, {len(rejects)} rejects, max_seq_len {tok['max_seq_len']}: ok")
PY
  "$CLIPCAP" tokenize --gpt2 "$gpt2" --input "$tmp/$fmt/captions.txt" | tr -d ' ' > "$tmp/$fmt/ref.jsonl"
  tr -d ' ' < "$tmp/$fmt/ids.jsonl" | cmp - "$tmp/$fmt/ref.jsonl"
done

# A COCO annotation file for the evaluated split: every manifest image of
# that split with all its captions, image ids = keys.
/usr/bin/python3 - "$tmp/karpathy" <<'PY'
import json, sys
d = sys.argv[1]
ann = json.load(open(f"{d}/np1/ann.json"))
recs = [json.loads(l) for l in open(f"{d}/records.jsonl")]
test = [r for r in recs if r.get("split") == "test"]
assert sorted(i["id"] for i in ann["images"]) == sorted(int(r["key"]) for r in test)
by_img = {}
for a in ann["annotations"]:
    by_img.setdefault(a["image_id"], []).append(a["caption"])
for r in test:
    assert by_img[int(r["key"])] == r["captions"]
assert len({a["id"] for a in ann["annotations"]}) == len(ann["annotations"])
print("annotations: ok")
PY
# The same CC samples as files and as tars give the same records but for
# the location.
/usr/bin/python3 - "$tmp/cc-files/records.jsonl" "$tmp/cc-tar/records.jsonl" <<'PY'
import json, sys
def load(p):
    out = []
    for l in open(p, encoding="utf-8"):
        r = json.loads(l)
        if "format" not in r:
            r.pop("loc")
            out.append(r)
    return out
a, b = load(sys.argv[1]), load(sys.argv[2])
assert a == b and len(a) > 0, "cc-files and cc-tar manifests differ"
print(f"cc-files == cc-tar: {len(a)} records")
PY
echo "shard_mpi: ok"
