#!/usr/bin/python3
"""PyTorch side of bench/bench_train.sh: one ClipCap training step (MLP
mapper + GPT-2 tuned: forward, loss, backward, AdamW) in plain PyTorch, the
ops the reference's model runs (the model code of
tests/gen/gen_train_fixtures.py at GPT-2 small's shape), random weights.

usage: bench_train.py BATCH CAPTION_LEN PREFIX_LEN THREADS STEPS
prints: "torch steps/s: X" """
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "gen"))
import gen_train_fixtures as g  # noqa: E402

batch, length, prefix, threads, steps = (int(a) for a in sys.argv[1:6])
torch.set_num_threads(threads)
# GPT-2 small, CLIP ViT-B/32's 512-d embedding
g.E, g.NL, g.NH, g.V, g.NPOS, g.D, g.K, g.B, g.L = 768, 12, 12, 50257, 1024, 512, prefix, batch, length
gen = torch.Generator().manual_seed(0)
gp = {n: (torch.randn(t.shape, generator=gen) * 0.02).requires_grad_(True) for n, t in g.gpt2_init(gen).items()}
mp = g.mlp_init(gen)
with torch.no_grad():
    for t in mp.values():
        t.mul_(0.05)
clip = torch.randn(batch, 512, generator=gen)
tokens = torch.randint(0, g.V, (batch, length), generator=gen).tolist()
params = list(gp.values()) + list(mp.values())
opt = torch.optim.AdamW(params, lr=2e-5, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0)


def step():
    opt.zero_grad()
    _, loss, _ = g.clipcap_loss(gp, g.mlp_forward, mp, clip, tokens, hf_mask=False)
    loss.backward()
    opt.step()
    return loss.item()


step()  # warm-up: allocator, thread pool
t0 = time.perf_counter()
for _ in range(steps):
    loss = step()
dt = time.perf_counter() - t0
print(f"torch {threads} threads: {dt:.3f} s for {steps} steps (batch {batch}, T {prefix + length}), loss {loss:.4f}, "
      f"steps/s: {steps / dt:.4f}")
