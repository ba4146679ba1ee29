#!/usr/bin/python3
"""Reference fixtures for GPT-2, both ClipCap mappers and the training step.

Written in plain PyTorch from ../shared/reference/CLIPCAP_FACTS.md (no
transformers library, nothing shared with the C code; the model code is
clipcap_ref.py, shared with the other ClipCap generators): a tiny random GPT-2 in
hub layout (config.json + model.safetensors, once with `transformer.` names,
attn.bias buffers and lm_head.weight, once with bare names and
attn.masked_bias), a tiny MLP mapper and a tiny Transformer mapper, one batch
of CLIP embeddings and right-padded captions, and for two variants

  mlp:         MLP mapper + GPT-2 tuned
  transformer: Transformer mapper + GPT-2 frozen

the logits, the loss, every parameter gradient, the gradient w.r.t. the
prefix, and the parameters and losses over 3 AdamW steps with a short linear
warm-up / linear decay schedule.

The loss ignores padding only. The reference ClipCap code instead feeds an
attention mask over prefix + real tokens and ignores target id 0; both are
computed here: the masked forward must give the same loss and gradients as
the unmasked causal one (pads sit after every real token), which this script
asserts, and `loss_ignore_bang` is the loss with "!" (id 0) targets ignored.

Run: /usr/bin/python3 tests/gen/gen_train_fixtures.py  (writes tests/fixtures/train/)
"""
import functools
import json
import os
import struct
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import clipcap_ref as ref  # noqa: E402

OUT = os.path.join(HERE, "..", "fixtures", "train")

E, NL, NH, V, NPOS = 32, 2, 4, 64, 64  # GPT-2: width, layers, heads, vocab, positions
D = 24  # CLIP embedding size
K = 4  # prefix length
CLIP_LEN = 3  # Transformer mapper's clip_length
MAP_LAYERS = 2
MAP_HEADS = 8
EPS = 1e-5
B, L = 3, 6
# right-padded captions; -1 is padding. Caption 1 holds a real "!" (id 0), all end with "." (13)
TOKENS = [[5, 17, 0, 42, 9, 13], [33, 2, 13, -1, -1, -1], [7, 13, -1, -1, -1, -1]]
ADAM = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01)
WARMUP, TOTAL, STEPS = 2, 4, 3


def save_safetensors(path, tensors, metadata=None):
    """The hub format: u64 header length, JSON header, raw little-endian data."""
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        if t.dtype == torch.bool:
            raw, dt = t.to(torch.uint8).numpy().tobytes(), "BOOL"
        elif t.dtype == torch.float16:
            raw, dt = t.detach().contiguous().numpy().astype("<f2").tobytes(), "F16"
        else:
            raw, dt = t.detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes(), "F32"
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    if len(h) & 0xFF == 0x80:
        # common/io/tensorfile.c takes a first byte 0x80 for a legacy pickle
        # (reported to the lead); avoid that header length here.
        h += b" " * 8
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def rnd(g, *shape, std=0.2, mean=0.0):
    return (torch.randn(*shape, generator=g) * std + mean).requires_grad_(True)


# ---------------- the model (clipcap_ref.py at this file's sizes) ----------------
# Sizes are read when called: bench/bench_train.py and gen_learn_clip.py
# set this module's E, NL, ... to other shapes and reuse these.
def gpt2_init(g):
    p = {"wte.weight": rnd(g, V, E, std=0.3), "wpe.weight": rnd(g, NPOS, E, std=0.1)}
    return ref.gpt2_blocks_init(p, functools.partial(rnd, g), E, NL, mlp_proj_std=0.1)


def gpt2_forward(p, x, mask=None):
    """x: input embeddings [B, T, E]; mask: [B, T] (1 = attend) as HF applies it."""
    return ref.gpt2_forward(p, x, NH, NL, mask, EPS)


def mlp_init(g):
    return ref.mlp_init(functools.partial(rnd, g), E, D, K)


def mlp_forward(p, c):
    return ref.mlp_forward(p, c, E)


def tmap_init(g):
    return ref.tmap_init(functools.partial(rnd, g), E, D, K, CLIP_LEN, MAP_LAYERS)


def tmap_forward(p, c):
    return ref.tmap_forward(p, c, CLIP_LEN, MAP_LAYERS, MAP_HEADS, EPS)


# ---------------- the ClipCap step ----------------
def clipcap_loss(gp, mapper, mp, clip, tokens, hf_mask, ignore_bang=False):
    """Returns (logits, loss, prefix). Padding is embedded as id 0 (as the
    reference does) and ignored in the loss."""
    tok = torch.tensor(tokens)
    emb_ids = tok.clamp(min=0)
    prefix = mapper(mp, clip)
    prefix.retain_grad()
    x = torch.cat((prefix, gp["wte.weight"][emb_ids]), dim=1)
    mask = None
    if hf_mask:
        mask = torch.cat((torch.ones(B, K), (tok >= 0).float()), dim=1)
    logits = gpt2_forward(gp, x, mask)
    targets = tok.clone()
    if ignore_bang:
        targets[targets == 0] = -1
    pred = logits[:, K - 1:K - 1 + L].reshape(-1, V)
    loss = torch.nn.functional.cross_entropy(pred, targets.reshape(-1), ignore_index=-1)
    return logits, loss, prefix


def lr_lambda(step):
    """get_linear_schedule_with_warmup: step = number of scheduler steps taken."""
    if step < WARMUP:
        return step / max(1, WARMUP)
    return max(0.0, (TOTAL - step) / max(1, TOTAL - WARMUP))


def np_save(name, a):
    np.save(os.path.join(OUT, name), np.ascontiguousarray(a, dtype=np.float32))


def variant(name, gp, mapper, mp, clip, tune_gpt2):
    trainable = dict(mp)
    if tune_gpt2:
        trainable.update(gp)
    for t in list(gp.values()) + list(mp.values()):
        t.grad = None
    logits, loss, prefix = clipcap_loss(gp, mapper, mp, clip, TOKENS, hf_mask=False)
    loss.backward()
    grads_plain = {n: t.grad.clone() for n, t in trainable.items()}
    dprefix_plain = prefix.grad.clone()
    for t in list(gp.values()) + list(mp.values()):
        t.grad = None
    logits_m, loss_m, prefix_m = clipcap_loss(gp, mapper, mp, clip, TOKENS, hf_mask=True)
    loss_m.backward()
    # The reference's mask changes nothing that the loss sees.
    assert abs(loss.item() - loss_m.item()) < 1e-6, (loss.item(), loss_m.item())
    for n, t in trainable.items():
        assert torch.allclose(grads_plain[n], t.grad, atol=1e-6), n
    assert torch.allclose(dprefix_plain, prefix_m.grad, atol=1e-6)
    _, loss_bang, _ = clipcap_loss(gp, mapper, mp, clip, TOKENS, hf_mask=False, ignore_bang=True)

    np_save(f"{name}_logits.npy", logits.detach())
    np_save(f"{name}_logits_hfmask.npy", logits_m.detach())
    np_save(f"{name}_dprefix.npy", dprefix_plain)
    np_save(f"{name}_loss.npy", np.array([loss.item(), loss_bang.item()]))
    gprefix = {n if n.startswith("clip_project.") else "gpt.transformer." + n: g for n, g in grads_plain.items()}
    save_safetensors(os.path.join(OUT, f"{name}_grads.safetensors"), gprefix)

    # AdamW over the trainable tensors, on copies so the next variant starts clean
    params = {n: t.detach().clone().requires_grad_(True) for n, t in trainable.items()}
    gpw = {n: params.get(n, t) for n, t in gp.items()}
    mpw = {n: params[n] for n in mp}
    opt = torch.optim.AdamW(list(params.values()), **ADAM)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        _, l, _ = clipcap_loss(gpw, mapper, mpw, clip, TOKENS, hf_mask=False)
        l.backward()
        opt.step()
        sched.step()
        losses.append(l.item())
    np_save(f"{name}_step_losses.npy", np.array(losses))
    after = {n if n.startswith("clip_project.") else "gpt.transformer." + n: t for n, t in params.items()}
    save_safetensors(os.path.join(OUT, f"{name}_params_after.safetensors"), after)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1234)
    gp = gpt2_init(g)
    mlp = mlp_init(g)
    tm = tmap_init(g)
    clip = torch.randn(B, D, generator=g)
    causal = torch.tril(torch.ones(NPOS, NPOS)).view(1, 1, NPOS, NPOS)

    cfg = {"model_type": "gpt2", "n_embd": E, "n_head": NH, "n_layer": NL, "n_positions": NPOS,
           "n_ctx": NPOS, "vocab_size": V, "layer_norm_epsilon": EPS, "activation_function": "gelu_new"}
    for sub, prefix in (("gpt2_prefixed", "transformer."), ("gpt2_bare", "")):
        d = os.path.join(OUT, sub)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=1)
        t = {}
        for n, w in gp.items():
            t[prefix + n] = w
            if n.endswith("ln_1.bias"):  # the causal-mask buffers some files hold
                l = n.split(".")[1]
                if prefix:
                    t[f"{prefix}h.{l}.attn.bias"] = causal
                else:
                    t[f"h.{l}.attn.bias"] = causal.bool()
                    t[f"h.{l}.attn.masked_bias"] = torch.tensor([-1e4])
        if prefix:
            t["lm_head.weight"] = gp["wte.weight"]
        save_safetensors(os.path.join(d, "model.safetensors"), t, {"format": "pt"})

    save_safetensors(os.path.join(OUT, "mapper_mlp.safetensors"), mlp)
    # a whole-model checkpoint as the reference publishes it: torch.save of
    # the ClipCap state dict (zip), GPT-2 under gpt.transformer.*, the tied
    # head gpt.lm_head.weight sharing wte's storage
    sd = {n: t.detach() for n, t in mlp.items()}
    for n, t in gp.items():
        sd["gpt.transformer." + n] = t.detach()
    for l in range(NL):
        sd[f"gpt.transformer.h.{l}.attn.bias"] = causal.clone()
    sd["gpt.lm_head.weight"] = sd["gpt.transformer.wte.weight"]
    torch.save(sd, os.path.join(OUT, "clipcap_mlp.pt"))
    save_safetensors(os.path.join(OUT, "mapper_transformer.safetensors"), tm)
    np_save("clip.npy", clip)
    np_save("tokens.npy", np.array(TOKENS))
    # the mappers alone: outputs for a known upstream gradient
    dout = torch.randn(B, K, E, generator=g)
    np_save("mapper_dout.npy", dout)
    for name, fwd, p in (("mlp", mlp_forward, mlp), ("transformer", tmap_forward, tm)):
        for t in p.values():
            t.grad = None
        y = fwd(p, clip)
        (y * dout).sum().backward()
        np_save(f"mapper_{name}_out.npy", y.detach())
        save_safetensors(os.path.join(OUT, f"mapper_{name}_grads.safetensors"), {n: t.grad for n, t in p.items()})

    # AdamW + schedule alone, fixed gradients (no amplification of gradient noise)
    p0 = torch.randn(257, generator=g)
    grads = torch.randn(STEPS, 257, generator=g) * torch.logspace(-8, 0, 257)
    w = p0.clone().requires_grad_(True)
    opt = torch.optim.AdamW([w], **ADAM)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
    for s in range(STEPS):
        w.grad = grads[s].clone()
        opt.step()
        sched.step()
    np_save("adamw_p0.npy", p0)
    np_save("adamw_grads.npy", grads)
    np_save("adamw_p3.npy", w.detach())

    variant("mlp", gp, mlp_forward, mlp, clip, tune_gpt2=True)
    variant("transformer", gp, tmap_forward, tm, clip, tune_gpt2=False)
    # a GPT-2 with the real vocabulary (so real tokenizer ids fit) but E=4,
    # one layer, stored as F16 to stay small: the integration tests' model
    gv = torch.Generator().manual_seed(77)
    EV, VV = 8, 50257
    big = {"wte.weight": torch.randn(VV, EV, generator=gv) * 0.5, "wpe.weight": torch.randn(NPOS, EV, generator=gv) * 0.1}
    for n, shape in (("ln_1.weight", (EV,)), ("ln_1.bias", (EV,)), ("attn.c_attn.weight", (EV, 3 * EV)),
                     ("attn.c_attn.bias", (3 * EV,)), ("attn.c_proj.weight", (EV, EV)), ("attn.c_proj.bias", (EV,)),
                     ("ln_2.weight", (EV,)), ("ln_2.bias", (EV,)), ("mlp.c_fc.weight", (EV, 4 * EV)),
                     ("mlp.c_fc.bias", (4 * EV,)), ("mlp.c_proj.weight", (4 * EV, EV)), ("mlp.c_proj.bias", (EV,))):
        w = torch.randn(*shape, generator=gv) * 0.2
        big["h.0." + n] = w + 1.0 if n.endswith("ln_1.weight") or n.endswith("ln_2.weight") else w
    big["ln_f.weight"] = torch.ones(EV)
    big["ln_f.bias"] = torch.zeros(EV)
    d = os.path.join(OUT, "gpt2_fullvocab")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(dict(cfg, n_embd=EV, n_head=2, n_layer=1, vocab_size=VV), f, indent=1)
    save_safetensors(os.path.join(d, "model.safetensors"),
                     {"transformer." + n: w.to(torch.float16) for n, w in big.items()})

    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write("Generated by tests/gen/gen_train_fixtures.py (plain PyTorch, no transformers); do not edit.\n"
                f"GPT-2: E={E} layers={NL} heads={NH} V={V} n_positions={NPOS}; CLIP dim {D}; prefix {K}; "
                f"clip_length {CLIP_LEN}; mapper layers {MAP_LAYERS} heads {MAP_HEADS}; batch {B}, caption length {L}.\n"
                f"AdamW {ADAM}, warm-up {WARMUP} of {TOTAL} steps, {STEPS} steps taken. tokens.npy: -1 = padding.\n"
                "gpt2_fullvocab/: E=8, 1 layer, 2 heads, the real 50257-token vocabulary, F16 weights "
                "(for tests/integration/train_*.sh).\n"
                "clipcap_mlp.pt: torch.save of the MLP variant's whole state dict (the published checkpoints' layout).\n")


if __name__ == "__main__":
    main()
