#!/usr/bin/python3
"""Reference for GPT-2's training-mode dropout (tests/unit/test_gpt2_dropout.c).

The tiny GPT-2 of gen_train_fixtures.py (same seed, so the same weights as
tests/fixtures/train/gpt2_prefixed) run in plain PyTorch with dropout where
Hugging Face's GPT2Model applies it (clipcap_ref.gpt2_forward's `drop`):
after wte + wpe, on the attention probabilities, after attn.c_proj and after
mlp.c_proj. The masks are the ones the C code draws (clipcap_ref's
dropout_keep / dropout_site_key, the formula of common/nn/ops_dropout_mask.h),
applied as PyTorch's dropout scales: x * mask * (1 / (1 - p)). Three
different probabilities (embd 0.1, attn 0.2, resid 0.3) so that a site given
the wrong one fails.

Writes tests/fixtures/train/dropout.safetensors: x [B, T, E] input
embeddings, r [B, T, V] (the objective is sum(logits * r)), logits, dx, the
logits without dropout (logits_eval), and grad.NAME for every GPT-2 tensor;
metadata: key, embd, attn, resid.

Run: /usr/bin/python3 tests/gen/gen_dropout_fixtures.py
"""
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import clipcap_ref as ref  # noqa: E402
import gen_train_fixtures as tf  # noqa: E402

B, T = 3, 7
KEY = 0x0123456789ABCDEF
P = {"embd": 0.1, "attn": 0.2, "resid": 0.3}


def main():
    g = torch.Generator().manual_seed(1234)
    gp = tf.gpt2_init(g)  # the first draws of gen_train_fixtures.main: the same weights
    gx = torch.Generator().manual_seed(4321)
    x = torch.randn(B, T, tf.E, generator=gx).requires_grad_(True)
    r = torch.randn(B, T, tf.V, generator=gx)

    def drop(site, z):
        p = P["embd"] if site == 0 else P["attn"] if site % 3 == 1 else P["resid"]
        keep = ref.dropout_keep(ref.dropout_site_key(KEY, site), 0, z.numel(), p)
        mask = torch.from_numpy(keep.reshape(tuple(z.shape)).astype(np.float32))
        return z * mask * torch.tensor(np.float32(1.0) / (np.float32(1.0) - np.float32(p)))

    logits = ref.gpt2_forward(gp, x, tf.NH, tf.NL, None, tf.EPS, drop=drop)
    (logits * r).sum().backward()
    with torch.no_grad():
        logits_eval = ref.gpt2_forward(gp, x, tf.NH, tf.NL, None, tf.EPS)
    out = {"x": x.detach(), "r": r, "logits": logits.detach(), "dx": x.grad, "logits_eval": logits_eval}
    for n, t in gp.items():
        out["grad." + n] = t.grad
    md = {"key": str(KEY), **{k: repr(v) for k, v in P.items()}}
    tf.save_safetensors(os.path.join(tf.OUT, "dropout.safetensors"), out, md)


if __name__ == "__main__":
    main()
