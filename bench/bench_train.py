#!/usr/bin/python3
"""PyTorch side of bench/bench_train.sh: one ClipCap training step (forward,
loss, backward, AdamW) in plain PyTorch, the ops the reference's model runs
(the model code of tests/gen/gen_train_fixtures.py at GPT-2 small's shape),
random weights, one warm-up step, then STEPS timed.

Variants:
  mlp          MLP mapper (k = 10) + GPT-2 tuned: AdamW over everything.
  transformer  Transformer mapper (k = 40, clip_length = 40, 8 layers), GPT-2
               frozen AS THE REFERENCE FREEZES IT: its ClipCaptionPrefix only
               hands the mapper to the optimiser, GPT-2's weights keep
               requires_grad, so backward computes their gradients and the
               next zero_grad throws them away.
  transformer-nograd  the same with GPT-2's requires_grad off (what a
               careful PyTorch user would write; not what the reference does).

PRECISION bf16 runs forward and loss under torch.autocast("cpu",
torch.bfloat16) (float32 master weights and optimiser, as autocast does).

usage: bench_train.py VARIANT BATCH CAPTION_LEN THREADS STEPS [PRECISION]
prints: "torch VARIANT ... s/step: X" """
import contextlib
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "gen"))
import gen_train_fixtures as g  # noqa: E402

variant = sys.argv[1]
batch, length, threads, steps = (int(a) for a in sys.argv[2:6])
precision = sys.argv[6] if len(sys.argv) > 6 else "fp32"
mode = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bf16" else contextlib.nullcontext
torch.set_num_threads(threads)
mlp = variant == "mlp"
# GPT-2 small, CLIP ViT-B/32's 512-d embedding, the paper's mapper shapes
g.E, g.NL, g.NH, g.V, g.NPOS, g.D = 768, 12, 12, 50257, 1024, 512
g.K, g.CLIP_LEN, g.MAP_LAYERS = (10, 0, 0) if mlp else (40, 40, 8)
g.B, g.L = batch, length
gen = torch.Generator().manual_seed(0)
with torch.no_grad():
    gp = {n: t.detach().mul_(0.1) for n, t in g.gpt2_init(gen).items()}
    mp = {n: t.detach().mul_(0.1) for n, t in (g.mlp_init(gen) if mlp else g.tmap_init(gen)).items()}
for t in mp.values():
    t.requires_grad_(True)
for t in gp.values():
    t.requires_grad_(variant != "transformer-nograd")
mapper = g.mlp_forward if mlp else g.tmap_forward
clip = torch.randn(batch, g.D, generator=gen)
tokens = torch.randint(0, g.V, (batch, length), generator=gen).tolist()
trained = list(gp.values()) + list(mp.values()) if mlp else list(mp.values())
every = [t for t in list(gp.values()) + list(mp.values()) if t.requires_grad]
opt = torch.optim.AdamW(trained, lr=2e-5, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0)


def step():
    for t in every:  # model.zero_grad() as the reference calls it (torch 1.13: zero in place)
        if t.grad is not None:
            t.grad.zero_()
    with mode():
        _, loss, _ = g.clipcap_loss(gp, mapper, mp, clip, tokens, hf_mask=False)
    loss.backward()
    opt.step()
    return loss.item()


step()  # warm-up: allocator, thread pool, optimiser state
t0 = time.perf_counter()
for _ in range(steps):
    loss = step()
dt = time.perf_counter() - t0
print(f"torch {variant} {precision} {threads} threads: batch {batch}, T {g.K + length}, loss {loss:.4f}, "
      f"s/step: {dt / steps:.3f}")
