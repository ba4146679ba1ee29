#!/usr/bin/python3
"""PyTorch side of bench/bench_clip.sh: writes a ViT-B/32-shaped CLIP
directory with the PRNG weights of tests/gen/gen_clip_fixtures.py, the batch
of images both sides encode (images.npy), then times the plain-PyTorch tower
(F.conv2d / F.linear / F.layer_norm / softmax: the same ops as the hub's
CLIPVisionModelWithProjection) on CPU and saves its embeddings (torch.npy).
PRECISION bf16 runs it under torch.autocast("cpu", torch.bfloat16), as a
PyTorch user asks for bf16 on a CPU (linear and conv in bf16 through
oneDNN, the rest float32), and leaves torch.npy alone.

usage: bench_clip.py OUTDIR BATCH BATCHES THREADS [PRECISION]
prints: "torch images/s: X" """
import contextlib
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "gen"))
import gen_clip_fixtures as g  # noqa: E402

out, batch, batches, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
precision = sys.argv[5] if len(sys.argv) > 5 else "fp32"
mode = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
torch.set_num_threads(threads)
model = os.path.join(out, "clip_b32")
params = g.prng_params(g.B32, g.B32_PROJ)
if not os.path.exists(os.path.join(model, "model.safetensors")):
    g.write_clip_dir(model, g.B32, g.B32_PROJ, params, {})
images = g.prng_images(batch, g.B32["image_size"])
np.save(os.path.join(out, "images.npy"), images)

with mode:
    g.clip_image_embed(params, g.B32, images)  # warm-up: allocator, thread pool
    t0 = time.perf_counter()
    for _ in range(batches):
        emb = g.clip_image_embed(params, g.B32, images)
    dt = time.perf_counter() - t0
if precision == "fp32":
    np.save(os.path.join(out, "torch.npy"), emb)
print("torch %s %s, %d threads: %.3f s for %d images, images/s: %.2f" % (
    torch.__version__, precision, threads, dt, batch * batches, batch * batches / dt))
