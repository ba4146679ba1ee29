#!/usr/bin/python3
"""Reference fixtures for `clipcap caption` and common/caption/captioner.

Plain PyTorch from ../shared/reference/CLIPCAP_FACTS.md (no transformers
library, nothing shared with the C code). Tiny random models in the
reference's state-dict layout, each saved twice, as torch.save .pt (what the
paper's published checkpoints are) and as safetensors (what `clipcap train`
writes), with the same weights:

  mlp_tuned    MLP mapper + GPT-2 tuned: clip_project.model.*, then
               gpt.transformer.* with the h.N.attn.bias (uint8) and
               h.N.attn.masked_bias buffers and gpt.lm_head.weight sharing
               wte's storage, in the order a ClipCaptionModel's state_dict()
               has them. Its GPT-2 weights differ from gpt2/'s, so a loader
               that takes GPT-2 from the hub directory gives other tokens.
  tf_frozen    Transformer mapper, GPT-2 frozen: clip_project.* only (GPT-2
               comes from gpt2/).
  tf_withgpt   the same mapper plus a copy of gpt2/'s weights as
               gpt.transformer.* (bool attn.bias), as the published
               Transformer checkpoint holds them. .pt only.

gpt2/ is a hub directory (config.json + model.safetensors with bare names and
attn.bias buffers) of a GPT-2 whose 64-token vocabulary is the first 64 ids of
the real one: tests pair it with tests/fixtures/gpt2/{vocab.json,merges.txt}.

expected.json: for the CLIP embeddings in clip.npy, the token ids (and the
sum of their log-probabilities) of the
reference's greedy generation (generate2: argmax, whole sequence recomputed
every step, stop after "." = 13 or 67 tokens, stop token kept) and their text
(GPT-2's byte-level decoding of vocab.json), per model, plus variants with
the embeddings L2-normalised and with stop token "T" (51). Every argmax on
those paths wins by at least MIN_MARGIN in logit, so fp32 rounding in another
summation order cannot flip it (asserted here; the margins are recorded).

expected.json "utf8_replace": byte strings and Python's
bytes.decode("utf-8", errors="replace") of them (what tokenizer.decode
returns for a caption cut inside a multi-byte character).

Bad inputs: not_a_state_dict.pt (a list of tensors), nested_state_dict.pt
({"model": state_dict}), bad_mlp_rows.safetensors (model.2.weight rows not a
multiple of n_embd), bad_mlp_hidden.safetensors (hidden size is not E·k/2),
bad_prefix_const.safetensors (prefix_const width is not n_embd),
no_mapper.safetensors (GPT-2 tensors only), bad_gpt_width.safetensors (the
checkpoint's gpt.transformer.wte.weight is wider than gpt2/config.json).

Run: /usr/bin/python3 tests/gen/gen_caption_fixtures.py  (writes tests/fixtures/caption/)
"""
import functools
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import clipcap_ref as ref  # noqa: E402
from gen_train_fixtures import save_safetensors  # noqa: E402  (the hub format writer)

OUT = os.path.join(HERE, "..", "fixtures", "caption")
VOCAB_JSON = os.path.join(HERE, "..", "fixtures", "gpt2", "vocab.json")

E, NL, NH, V, NPOS = 16, 2, 2, 64, 80  # GPT-2 width, layers, heads, vocab, positions
D = 16  # CLIP embedding size = tests/fixtures/clip/tiny's projection_dim
K_MLP = 4
K_TF, CLIP_LEN, MAP_LAYERS, MAP_HEADS = 5, 3, 2, 8
EPS = 1e-5
N_IMAGES = 6
ENTRY_LENGTH, STOP = 67, 13
MIN_MARGIN = 2e-3


def rnd(g, *shape, std=0.3, mean=0.0):
    return torch.randn(*shape, generator=g) * std + mean


def gpt2_init(g, push_pos, push_stop):
    p = {"wte.weight": rnd(g, V, E, std=0.5), "wpe.weight": rnd(g, NPOS, E, std=0.1)}
    # Random tiny models repeat one token forever; a direction u that grows
    # with the position and that "." is aligned with makes captions end
    # with "." after a varying number of tokens, as real ones do.
    u = rnd(g, E, std=1.0)
    u /= u.norm()
    p["wpe.weight"] += torch.arange(NPOS)[:, None] / NPOS * push_pos * u
    p["wte.weight"][STOP] += push_stop * u
    return ref.gpt2_blocks_init(p, functools.partial(rnd, g), E, NL, mlp_proj_std=0.15)


def generate2(gp, embed, stop_token):
    """The reference's greedy generation (brief: generate2), returning the
    token ids, the sum of their log-probabilities (log_softmax in float64)
    and the smallest top-1 vs top-2 logit gap along the path."""
    tokens, generated, margin, logprob = [], embed, float("inf"), 0.0
    for _ in range(ENTRY_LENGTH):
        logits = ref.gpt2_forward(gp, generated, NH, NL, eps=EPS)[:, -1, :]
        top2 = logits[0].topk(2).values
        margin = min(margin, float(top2[0] - top2[1]))
        logprob += float(logits[0].double().log_softmax(-1).max())
        next_token = torch.argmax(logits, -1).unsqueeze(0)
        tokens.append(int(next_token))
        generated = torch.cat((generated, gp["wte.weight"][next_token]), dim=1)
        if stop_token == int(next_token):
            break
    return tokens, logprob, margin


def byte_decoder():
    """GPT-2's bytes_to_unicode table, inverted."""
    return {c: b for b, c in ref.bytes_to_unicode().items()}


def detok(ids, inv_vocab, bdec):
    return bytes(bdec[ch] for i in ids for ch in inv_vocab[i]).decode("utf-8", errors="replace")


def gpt_state(gp, prefix, mask_dtype):
    """GPT-2's tensors as a GPT2LMHeadModel state_dict() lists them: per
    block the attention buffers come before c_attn; lm_head shares wte."""
    sd = {prefix + "wte.weight": gp["wte.weight"], prefix + "wpe.weight": gp["wpe.weight"]}
    for l in range(NL):
        h = f"h.{l}."
        for name in ("ln_1.weight", "ln_1.bias"):
            sd[prefix + h + name] = gp[h + name]
        if mask_dtype is not None:
            sd[prefix + h + "attn.bias"] = torch.tril(torch.ones(NPOS, NPOS)).to(mask_dtype).view(1, 1, NPOS, NPOS)
            sd[prefix + h + "attn.masked_bias"] = torch.tensor(-1e4)
        for name in ("attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight", "attn.c_proj.bias",
                     "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight",
                     "mlp.c_proj.bias"):
            sd[prefix + h + name] = gp[h + name]
    sd[prefix + "ln_f.weight"] = gp["ln_f.weight"]
    sd[prefix + "ln_f.bias"] = gp["ln_f.bias"]
    return sd


def clean(sd):
    """Each tensor its own contiguous storage, except deliberate sharing."""
    out, seen = {}, {}
    for k, t in sd.items():
        if id(t) not in seen:
            seen[id(t)] = t.detach().clone().contiguous()
        out[k] = seen[id(t)]
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(20261126)
    hub = gpt2_init(g, 3.0, 1.5)
    tuned = gpt2_init(g, 8.0, 4.0)
    mlp = ref.mlp_init(functools.partial(rnd, g), E, D, K_MLP, out_std=0.4)
    tmap = ref.tmap_init(functools.partial(rnd, g), E, D, K_TF, CLIP_LEN, MAP_LAYERS)

    # hub directory
    hub_dir = os.path.join(OUT, "gpt2")
    os.makedirs(hub_dir, exist_ok=True)
    with open(os.path.join(hub_dir, "config.json"), "w") as f:
        json.dump({"model_type": "gpt2", "n_embd": E, "n_head": NH, "n_layer": NL, "n_positions": NPOS,
                   "n_ctx": NPOS, "vocab_size": V, "layer_norm_epsilon": EPS, "activation_function": "gelu_new"},
                  f, indent=1)
    save_safetensors(os.path.join(hub_dir, "model.safetensors"), clean(gpt_state(hub, "", torch.bool)))

    # checkpoints: .pt in the reference's order (gpt first), safetensors in ours (clip_project first)
    sd_mlp_pt = gpt_state(tuned, "gpt.transformer.", torch.uint8)
    sd_mlp_pt["gpt.lm_head.weight"] = tuned["wte.weight"]
    sd_mlp_pt.update(mlp)
    torch.save(clean(sd_mlp_pt), os.path.join(OUT, "mlp_tuned.pt"))
    sd_mlp_st = dict(mlp)
    sd_mlp_st.update(gpt_state(tuned, "gpt.transformer.", None))
    sd_mlp_st["gpt.lm_head.weight"] = tuned["wte.weight"]
    save_safetensors(os.path.join(OUT, "mlp_tuned.safetensors"), clean(sd_mlp_st),
                     {"format": "clipcap-checkpoint", "format_version": "1"})

    torch.save(clean(tmap), os.path.join(OUT, "tf_frozen.pt"))
    save_safetensors(os.path.join(OUT, "tf_frozen.safetensors"), clean(tmap))
    sd_tfg = gpt_state(hub, "gpt.transformer.", torch.bool)
    sd_tfg["gpt.lm_head.weight"] = hub["wte.weight"]
    sd_tfg.update(tmap)
    torch.save(clean(sd_tfg), os.path.join(OUT, "tf_withgpt.pt"))

    # bad inputs
    torch.save([torch.zeros(3), torch.ones(2)], os.path.join(OUT, "not_a_state_dict.pt"))
    torch.save({"model": clean(tmap)}, os.path.join(OUT, "nested_state_dict.pt"))
    bad = dict(mlp)
    bad["clip_project.model.2.weight"] = rnd(g, E * K_MLP + 3, E * K_MLP // 2)
    bad["clip_project.model.2.bias"] = rnd(g, E * K_MLP + 3)
    save_safetensors(os.path.join(OUT, "bad_mlp_rows.safetensors"), clean(bad))
    bad = dict(mlp)
    bad["clip_project.model.0.weight"] = rnd(g, 7, D)
    bad["clip_project.model.0.bias"] = rnd(g, 7)
    save_safetensors(os.path.join(OUT, "bad_mlp_hidden.safetensors"), clean(bad))
    bad = dict(tmap)
    bad["clip_project.prefix_const"] = rnd(g, K_TF, E + 1)
    save_safetensors(os.path.join(OUT, "bad_prefix_const.safetensors"), clean(bad))
    save_safetensors(os.path.join(OUT, "no_mapper.safetensors"), clean(gpt_state(hub, "gpt.transformer.", None)))
    bad = dict(mlp)
    bad["gpt.transformer.wte.weight"] = rnd(g, V, 2 * E)
    save_safetensors(os.path.join(OUT, "bad_gpt_width.safetensors"), clean(bad))

    # CLIP embeddings whose greedy paths have clear argmax margins under every model and variant
    with open(VOCAB_JSON, encoding="utf-8") as f:
        inv_vocab = {i: s for s, i in json.load(f).items()}
    bdec = byte_decoder()
    def mlp_prefix(c):
        return ref.mlp_forward(mlp, c, E)

    def tmap_prefix(c):
        return ref.tmap_forward(tmap, c, CLIP_LEN, MAP_LAYERS, MAP_HEADS, EPS)

    variants = {
        "mlp_tuned": (tuned, mlp_prefix, False, STOP),
        "tf_frozen": (hub, tmap_prefix, False, STOP),
        "mlp_tuned_normalized": (tuned, mlp_prefix, True, STOP),
        "mlp_tuned_stop_T": (tuned, mlp_prefix, False, 51),
    }
    clips, results, tried = [], {k: [] for k in variants}, 0
    with torch.no_grad():
        while len(clips) < N_IMAGES:
            tried += 1
            c = rnd(g, 1, D, std=1.0)
            out = {}
            for name, (gp, mapper, norm, stop) in variants.items():
                x = c / c.norm(2, -1, keepdim=True) if norm else c
                out[name] = generate2(gp, mapper(x), stop)
            if min(m for _, _, m in out.values()) < MIN_MARGIN:
                continue
            clips.append(c[0].numpy())
            for name, (toks, logprob, margin) in out.items():
                results[name].append({"tokens": toks, "text": detok(toks, inv_vocab, bdec), "logprob": logprob,
                                      "margin": margin})
    np.save(os.path.join(OUT, "clip.npy"), np.stack(clips).astype("<f4"))
    stopped = sum(r["tokens"][-1] == STOP for r in results["mlp_tuned"] + results["tf_frozen"])
    expected = {
        "about": "greedy tokens of the reference generate2 (67 tokens, stop kept) for clip.npy; "
                 "written by tests/gen/gen_caption_fixtures.py",
        "min_margin": MIN_MARGIN,
        "max_tokens": ENTRY_LENGTH,
        "models": {k: {"stop_token": v[3], "normalize_prefix": v[2], "captions": results[k]}
                   for k, v in variants.items()},
    }
    # what the reference's tokenizer.decode does with bytes that are not UTF-8
    utf8 = [b"plain", b"caf\xc3\xa9", b"cut \xe2\x82", b"\xff\xfe", b"\xe0\x80\xaf", b"\xed\xa0\x80x",
            b"\xf0\x9f\x98", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"a\x80b", b"\xf0\x9f\x98\x80!", b"\xe2\x28\xa1"]
    expected["utf8_replace"] = [{"hex": b.hex(), "text": b.decode("utf-8", errors="replace")} for b in utf8]
    with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, indent=1, ensure_ascii=False)
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write("Generated by tests/gen/gen_caption_fixtures.py (plain PyTorch); do not edit.\n"
                f"GPT-2: E={E} layers={NL} heads={NH} V={V} (the first ids of the real vocabulary) "
                f"n_positions={NPOS}; CLIP dim {D}. MLP k={K_MLP}; Transformer k={K_TF} clip_length={CLIP_LEN} "
                f"layers={MAP_LAYERS} heads={MAP_HEADS}.\n"
                f"clip.npy: {N_IMAGES} embeddings (drawn until every greedy argmax wins by >= {MIN_MARGIN}; "
                f"{tried} drawn); {stopped} of the {2 * N_IMAGES} mlp_tuned/tf_frozen captions end with '.'.\n")
    print("wrote", OUT, "tried", tried, "stopped", stopped)


if __name__ == "__main__":
    main()
