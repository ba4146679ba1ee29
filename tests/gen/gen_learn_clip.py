#!/usr/bin/python3
"""Fixtures for tests/integration/train_learns.sh, written into
tests/fixtures/clip/learn/: a small CLIP and a small GPT-2 with which a
ClipCap trained for a few seconds on `clipcap synth` images names their
colours (plain PyTorch and numpy; no transformers).

  config.json, model.safetensors   the CLIP (hub layout, F32)
  gpt2/                            the GPT-2 (hub layout: config.json,
                                   model.safetensors, vocab.json, merges.txt)

Why not tests/fixtures/clip/tiny: its 16-d embeddings of the synthetic
images hold little of them (a linear probe finds the colour of 22% of the
images). This tower is the PRNG-weighted CLIP of gen_clip_fixtures.py (same
specs, another seed) at 64 px, 8 px patches, width 96, 128-d projection,
with three scales changed so that a random network keeps what captions name:
  - the patch embedding x PATCH_SCALE: a patch's pixels, not the position
    embedding, dominate its token after the pre-LayerNorm;
  - q/k projections x QK_SCALE: sharp attention, so the class token copies
    the few patches that stand out (the shapes) rather than an average
    dominated by the background;
  - v projections x V_SCALE: what attention brings in outweighs the class
    token's constant start, so embeddings differ between images by more
    than their common mean (a freshly initialised mapper sees the images
    apart).

Why not tests/fixtures/train/gpt2_fullvocab: its 50257 x 8 output layer
makes every token cost 400k multiply-adds, and 8 wide, random and 1 layer
deep it learns slowly (trained 400 steps, 28 s, on these features it still
gave 41 of 50 held-out images the same caption). Here the
tokenizer is GPT-2's own, restricted to the text of synthetic captions: the
256 byte tokens (ids 0..255, GPT-2's) plus exactly the merges GPT-2 applies
to the words of those captions (ids 256.. in merge order). BPE applies the
lowest-ranked merge among the pairs present, and every merge GPT-2 applies
to these words is kept with its rank order, so synthetic captions split into
the same tokens as with GPT-2 (any other text still encodes, byte-wise).
"." is id 13, as in GPT-2. The GPT-2 (width 32, 2 layers, 4 heads) is pre-trained
here on the captions' text alone (no images; PRETRAIN_STEPS AdamW steps),
as ClipCap starts from a pre-trained language model; a frozen random GPT-2
would leave the Transformer mapper nothing to steer. The text comes from
`clipcap synth --seed 99` (other images than the test's seed 1).

Everything is seeded: a rerun here (torch 1.13, 2 threads) rewrote every
file byte for byte; another torch build may change the GPT-2's last bits.

Run: /usr/bin/python3 tests/gen/gen_learn_clip.py [--clipcap build/clipcap] [--out DIR]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_clip_fixtures as G  # noqa: E402
import gen_train_fixtures as T  # noqa: E402
from clipcap_ref import bytes_to_unicode  # noqa: E402

OUT = os.path.join(HERE, "..", "fixtures", "clip", "learn")
GPT2_SRC = os.path.join(HERE, "..", "fixtures", "gpt2")

LEARN = {"hidden_size": 96, "intermediate_size": 192, "num_attention_heads": 4, "num_hidden_layers": 2,
         "image_size": 64, "patch_size": 8, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
         "num_channels": 3}
LEARN_PROJ = 128
SEED = 0x1EA2
PATCH_SCALE = 4.0
QK_SCALE = 4.0
V_SCALE = 10.0

GPT_E, GPT_LAYERS, GPT_HEADS, GPT_POS = 32, 2, 4, 64
PRETRAIN_STEPS, PRETRAIN_BATCH, PRETRAIN_PREFIX = 600, 32, 4
SYNTH_SEED, SYNTH_COUNT = 99, 2000


def learn_params(vc=LEARN, proj=LEARN_PROJ, patch_scale=PATCH_SCALE, qk_scale=QK_SCALE, v_scale=V_SCALE, seed=SEED):
    p = G.prng_params(vc, proj, seed=seed)
    p["vision_model.embeddings.patch_embedding.weight"] *= patch_scale
    for name in p:
        if ".q_proj." in name or ".k_proj." in name:
            p[name] *= qk_scale
        elif ".v_proj." in name:
            p[name] *= v_scale
    return p


# ---------------------------------------------------------------- tokenizer
# GPT-2's pre-tokenisation pattern, restricted to ASCII (captions are ASCII).
PRETOKEN = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+")


def bpe_word(word, merges, ranks, used):
    """GPT-2's merge loop on one pre-token (ranks: pair -> index in merges);
    adds the ranks of the merges it applies to used."""
    syms = list(word)
    while len(syms) > 1:
        pairs = [(ranks.get((a, b), 1 << 30), i) for i, (a, b) in enumerate(zip(syms, syms[1:]))]
        r, _ = min(pairs)
        if r == 1 << 30:
            break
        a, b = merges[r]
        used.add(r)
        out, i = [], 0
        while i < len(syms):
            if i + 1 < len(syms) and syms[i] == a and syms[i + 1] == b:
                out.append(a + b)
                i += 2
            else:
                out.append(syms[i])
                i += 1
        syms = out
    return syms


def sub_tokenizer(texts):
    """(vocab, merges, encode) of GPT-2 restricted to the merges texts need."""
    b2u = bytes_to_unicode()
    full = json.load(open(os.path.join(GPT2_SRC, "vocab.json"), encoding="utf-8"))
    with open(os.path.join(GPT2_SRC, "merges.txt"), encoding="utf-8") as f:
        merges = [tuple(l.split()) for l in f.read().splitlines()[1:] if l]
    ranks = {m: i for i, m in enumerate(merges)}
    used = set()
    for t in texts:
        for piece in PRETOKEN.findall(t):
            bpe_word("".join(b2u[c] for c in piece.encode()), merges, ranks, used)
    vocab = {b2u[b]: full[b2u[b]] for b in range(256)}
    assert sorted(vocab.values()) == list(range(256)), "GPT-2's ids 0..255 are its byte tokens"
    kept = [merges[r] for r in sorted(used)]
    for a, b in kept:
        vocab.setdefault(a + b, len(vocab))
    sub_ranks = {m: i for i, m in enumerate(kept)}

    def split(text, merges, ranks):
        return [s for piece in PRETOKEN.findall(text)
                for s in bpe_word("".join(b2u[c] for c in piece.encode()), merges, ranks, set())]

    def encode(text):
        return [vocab[s] for s in split(text, kept, sub_ranks)]
    # The sub-tokenizer must split every text as GPT-2 does, token for token.
    for t in set(texts):
        assert split(t, kept, sub_ranks) == split(t, merges, ranks), t
    return vocab, kept, encode


# ---------------------------------------------------------------- GPT-2
def pretrain_gpt2(seqs, vocab_size):
    """Next-token training on caption text placed after PRETRAIN_PREFIX zero
    input vectors (where ClipCap's prefix goes), so the first word is
    predicted from the prefix slots as in ClipCap."""
    # gen_train_fixtures' GPT-2 reads its sizes from module globals.
    T.E, T.NL, T.NH, T.V, T.NPOS = GPT_E, GPT_LAYERS, GPT_HEADS, vocab_size, GPT_POS
    g = torch.Generator().manual_seed(SEED)
    p = T.gpt2_init(g)
    with torch.no_grad():
        for n, w in p.items():
            # gpt2_init draws them with std 0.2; 1/sqrt(width) trains stably.
            if n.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight")):
                w.mul_(GPT_E ** -0.5 / 0.2)
    opt = torch.optim.AdamW(p.values(), lr=3e-3, weight_decay=0.0)
    L = max(len(s) for s in seqs)
    tok = torch.full((len(seqs), L), -1, dtype=torch.long)
    for i, s in enumerate(seqs):
        tok[i, :len(s)] = torch.tensor(s)
    rng = np.random.default_rng(SEED)
    torch.set_num_threads(2)
    for step in range(PRETRAIN_STEPS):
        idx = torch.from_numpy(rng.choice(len(seqs), PRETRAIN_BATCH, replace=False))
        t = tok[idx]
        emb = p["wte.weight"][t.clamp(min=0)]
        x = torch.cat([torch.zeros(len(idx), PRETRAIN_PREFIX, GPT_E), emb], 1)
        logits = T.gpt2_forward(p, x)[:, PRETRAIN_PREFIX - 1:-1]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab_size), t.reshape(-1), ignore_index=-1)
        for gr in opt.param_groups:
            gr["lr"] = 3e-3 * min(1.0, (step + 1) / 50) * (1 - step / PRETRAIN_STEPS)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == PRETRAIN_STEPS - 1:
            print(f"pretrain step {step} loss {loss.item():.3f}", file=sys.stderr)
    return {n: w.detach() for n, w in p.items()}


def synth_captions(clipcap):
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([clipcap, "synth", "--out", d, "--count", str(SYNTH_COUNT), "--seed", str(SYNTH_SEED),
                        "--layouts", "coco", "--large", "0"], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        recs = json.load(open(os.path.join(d, "synth_index.json")))["records"]
    return [c for r in recs for c in r["captions"]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clipcap", default=os.path.join(HERE, "..", "..", "build", "clipcap"))
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args()
    G.write_clip_dir(args.out, LEARN, LEARN_PROJ, learn_params(), {})

    texts = synth_captions(args.clipcap)
    vocab, merges, encode = sub_tokenizer(texts)
    gdir = os.path.join(args.out, "gpt2")
    os.makedirs(gdir, exist_ok=True)
    with open(os.path.join(gdir, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(gdir, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    p = pretrain_gpt2([encode(t) for t in texts], len(vocab))
    with open(os.path.join(gdir, "config.json"), "w") as f:
        json.dump({"model_type": "gpt2", "n_embd": GPT_E, "n_head": GPT_HEADS, "n_layer": GPT_LAYERS,
                   "n_positions": GPT_POS, "n_ctx": GPT_POS, "vocab_size": len(vocab),
                   "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new"}, f, indent=1)
    T.save_safetensors(os.path.join(gdir, "model.safetensors"), {"transformer." + n: w for n, w in p.items()})
    print(f"vocab {len(vocab)} tokens, {len(merges)} merges, {len(texts)} captions", file=sys.stderr)


if __name__ == "__main__":
    main()
