#!/usr/bin/env bash
# `clipcap caption` end to end on synthetic images (clipcap synth) with the
# tiny CLIP and the tiny ClipCap fixtures (tests/gen/gen_caption_fixtures.py):
#  - --images (directories) and --store (after clipcap extract, fp32) give the
#    same tokens per image: both embed with the same CLIP code; exact, since
#    the greedy argmax margins of these models are far above the last-bit
#    differences a different batch can make;
#  - mpirun -np 2 prints the same bytes as one process, --out FILE the same
#    bytes as stdout; --batch 1 the same tokens as --batch 16;
#  - --manifest DIR --out OUTDIR (the corpus dump) gives the --store tokens;
#  - --max-tokens N gives the first N greedy tokens; --stop TEXT cuts each
#    greedy caption after the first TEXT token; --beam 3 --num-captions 2
#    gives two captions per image ranked by score; the text is the GPT-2
#    byte decoding of the tokens (checked in Python from vocab.json);
#  - bad input: an unreadable image is reported by path and skipped (exit 1,
#    the others printed), a missing --keys key likewise; a .pt that is not a
#    state dict, a checkpoint whose shapes fit no mapper, a --stop of two
#    tokens, --num-captions > --beam, --images without --clip: one error
#    line and a non-zero exit.
. "$CLIPCAP_SOURCE/tests/integration/extract_lib.bash"
fx="$CLIPCAP_FIXTURES"
export OMP_NUM_THREADS=1

caption_gpt2_dir "$WORK/gpt2"
M=(--model "$fx/caption/mlp_tuned.pt" --gpt2 "$WORK/gpt2")
IMGS=(--clip "$CLIP_TINY" --images "$WORK/syn/coco/train2014" "$WORK/syn/coco/val2014")

"$CLIPCAP" caption --help | grep -q -- '--num-captions'
make_store "$WORK" 8

"$CLIPCAP" caption "${M[@]}" "${IMGS[@]}" --batch 3 >"$WORK/img.jsonl" 2>"$WORK/img.log" || fail "caption --images: $(cat "$WORK/img.log")"
"${MPI2[@]}" "$CLIPCAP" caption "${M[@]}" "${IMGS[@]}" --batch 3 >"$WORK/img2.jsonl" 2>"$WORK/img2.log" \
    || fail "mpirun caption --images: $(cat "$WORK/img2.log")"
cmp "$WORK/img.jsonl" "$WORK/img2.jsonl" || fail "mpirun -np 2 output differs from one process"
"$CLIPCAP" caption "${M[@]}" "${IMGS[@]}" --batch 3 --out "$WORK/img_out.jsonl" 2>/dev/null
cmp "$WORK/img.jsonl" "$WORK/img_out.jsonl" || fail "--out differs from stdout"
grep -q 'captions/s' "$WORK/img.log" || fail "no summary with captions/s"

"$CLIPCAP" caption "${M[@]}" --store "$WORK/store" >"$WORK/store.jsonl" 2>"$WORK/store.log" || fail "caption --store: $(cat "$WORK/store.log")"
"${MPI2[@]}" "$CLIPCAP" caption "${M[@]}" --store "$WORK/store" >"$WORK/store2.jsonl" 2>/dev/null
cmp "$WORK/store.jsonl" "$WORK/store2.jsonl" || fail "--store: mpirun -np 2 differs from one process"
"$CLIPCAP" caption "${M[@]}" --store "$WORK/store" --batch 1 >"$WORK/store_b1.jsonl" 2>/dev/null

"$PY" - "$WORK/img.jsonl" "$WORK/store.jsonl" "$fx/gpt2/vocab.json" "$WORK/store_b1.jsonl" <<'PYEOF' || fail "images vs store"
import json, os, re, sys
img = [json.loads(l) for l in open(sys.argv[1])]
sto = {d["key"]: d for d in map(json.loads, open(sys.argv[2]))}
one = {d["key"]: d["tokens"] for d in map(json.loads, open(sys.argv[4]))}
if one != {k: d["tokens"] for k, d in sto.items()}: sys.exit("--batch 1 gives other tokens than --batch 16")
inv = {i: s for s, i in json.load(open(sys.argv[3], encoding="utf-8")).items()}
bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
cs, n = bs[:], 0
for b in range(256):
    if b not in bs: bs.append(b); cs.append(256 + n); n += 1
bdec = {chr(c): b for b, c in zip(bs, cs)}
if len(img) < 6 or len(img) != len(sto): sys.exit("%d image lines, %d store lines" % (len(img), len(sto)))
for d in img:
    key = str(int(re.search(r"(\d+)\.\w+$", d["path"]).group(1)))  # COCO keys are image ids
    if key not in sto: sys.exit("no store line for %s" % key)
    if d["tokens"] != sto[key]["tokens"]: sys.exit("%s: tokens differ between --images and --store" % d["path"])
    text = bytes(bdec[ch] for t in d["tokens"] for ch in inv[t]).decode("utf-8", "replace")
    if text != d["caption"]: sys.exit("%s: caption %r is not the decoding %r of its tokens" % (d["path"], d["caption"], text))
    if not (1 <= len(d["tokens"]) <= 67 and d["logprob"] < 0): sys.exit("%s: bad line %s" % (d["path"], d))
print("images vs store: %d captions agree" % len(img))
PYEOF

# --manifest hands the corpus to the dump (caption_corpus_run): same tokens per key
"$CLIPCAP" caption "${M[@]}" --store "$WORK/store" --manifest "$WORK/man" --out "$WORK/dump" >/dev/null 2>"$WORK/dump.log" \
    || fail "caption --manifest: $(cat "$WORK/dump.log")"
zstd -dc "$WORK"/dump/captions-*.jsonl.zst >"$WORK/dump.jsonl"
"$PY" - "$WORK/dump.jsonl" "$WORK/store.jsonl" <<'PYEOF' || fail "--manifest dump vs --store"
import json, sys
dump = {d["key"]: d["tokens"] for d in map(json.loads, open(sys.argv[1])) if "key" in d}
sto = {d["key"]: d["tokens"] for d in map(json.loads, open(sys.argv[2]))}
if dump != sto: sys.exit("the dump's tokens differ from --store's (%d vs %d keys)" % (len(dump), len(sto)))
PYEOF

# --max-tokens, --stop, --beam/--num-captions against the greedy lines
"$CLIPCAP" caption "${M[@]}" --store "$WORK/store" --max-tokens 3 >"$WORK/max3.jsonl" 2>/dev/null
stop_text=$("$PY" -c 'import json,sys; t=json.loads(open(sys.argv[1]).readline())["tokens"]; print(chr(33 + t[1]))' "$WORK/store.jsonl")
"$CLIPCAP" caption "${M[@]}" --store "$WORK/store" --stop "$stop_text" >"$WORK/stop.jsonl" 2>/dev/null
"$CLIPCAP" caption "${M[@]}" --store "$WORK/store" --beam 3 --num-captions 2 >"$WORK/beam.jsonl" 2>/dev/null
"$PY" - "$WORK" "$stop_text" <<'PYEOF' || fail "generation options"
import json, sys
w, stop = sys.argv[1], ord(sys.argv[2]) - 33
load = lambda n: [json.loads(l) for l in open("%s/%s.jsonl" % (w, n))]
greedy, max3, cut, beam = load("store"), load("max3"), load("stop"), load("beam")
for g, m, s, b in zip(greedy, max3, cut, beam):
    if m["tokens"] != g["tokens"][:3]: sys.exit("--max-tokens 3: %s vs %s" % (m["tokens"], g["tokens"]))
    want = g["tokens"][: g["tokens"].index(stop) + 1] if stop in g["tokens"] else None
    if want is not None and s["tokens"] != want: sys.exit("--stop: %s, want %s" % (s["tokens"], want))
    if want is None and (stop in s["tokens"] or s["tokens"][:len(g["tokens"])] != g["tokens"][:len(s["tokens"])]):
        sys.exit("--stop: %s vs greedy %s" % (s["tokens"], g["tokens"]))
    c = b["captions"]
    if len(c) != 2 or c[0]["score"] < c[1]["score"] or "caption" in b: sys.exit("--num-captions 2: %s" % b)
    for x in c:
        if abs(x["score"] - x["logprob"] / len(x["tokens"])) > 1e-5 * abs(x["score"]): sys.exit("score: %s" % x)
if len(greedy) != len(beam) or len(greedy) != len(cut): sys.exit("line counts differ")
print("max-tokens, stop %r, beam: ok" % sys.argv[2])
PYEOF

# bad input
expect_fail() { # WANT_RC PATTERN args...
    local want=$1 pat=$2 rc=0; shift 2
    "$CLIPCAP" caption "$@" >"$WORK/bad.out" 2>"$WORK/bad.log" || rc=$?
    [ "$rc" -eq "$want" ] || fail "caption $*: exit $rc, want $want: $(cat "$WORK/bad.log")"
    grep -q -- "$pat" "$WORK/bad.log" || fail "caption $*: no '$pat' in: $(cat "$WORK/bad.log")"
}
echo "not an image" >"$WORK/broken.png"
cp "$WORK/syn/coco/train2014/$(ls "$WORK/syn/coco/train2014" | head -1)" "$WORK/good.png"
expect_fail 1 "$WORK/broken.png" "${M[@]}" --clip "$CLIP_TINY" --images "$WORK/good.png" "$WORK/broken.png"
[ "$(wc -l <"$WORK/bad.out")" -eq 1 ] || fail "the good image was not captioned next to a broken one"
key=$("$PY" -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["key"])' "$WORK/store.jsonl")
expect_fail 1 "key nosuchkey" "${M[@]}" --store "$WORK/store" --keys "$key,nosuchkey"
[ "$(wc -l <"$WORK/bad.out")" -eq 1 ] || fail "--keys: the present key was not captioned"
expect_fail 1 "not a state dict" --model "$fx/caption/not_a_state_dict.pt" --gpt2 "$WORK/gpt2" --store "$WORK/store"
[ "$(wc -l <"$WORK/bad.log")" -eq 1 ] || fail "a fatal error is more than one line: $(cat "$WORK/bad.log")"
expect_fail 1 "tensor clip_project.model.2.weight" --model "$fx/caption/bad_mlp_rows.safetensors" --gpt2 "$WORK/gpt2" --store "$WORK/store"
expect_fail 1 "no ClipCap mapper" --model "$fx/caption/no_mapper.safetensors" --gpt2 "$WORK/gpt2" --store "$WORK/store"
expect_fail 2 "is 2 GPT-2 tokens" "${M[@]}" --store "$WORK/store" --stop "A."
expect_fail 2 "more than --beam" "${M[@]}" --store "$WORK/store" --num-captions 3 --beam 2
expect_fail 2 "needs --clip" "${M[@]}" --images "$WORK/good.png"
echo "caption_images: ok"
