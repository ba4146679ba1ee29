#!/usr/bin/python3
"""PyTorch-on-GPU side of the CUDA benchmark in launch/device_check.sh: the
same ViT-B/32 tower as bench/bench_clip.py (PRNG weights of
tests/gen/gen_clip_fixtures.py, the plain F.conv2d / F.linear / F.layer_norm
/ softmax ops of the hub model) on the GPU in FP32 with TF32 off (clipcap's
CUDA backend does FP32 GEMMs too), weights resident on the device, on the
images.npy that bench_clip.py wrote into OUTDIR. One warm-up pass, then
BATCHES timed passes, each doing what clipcap's clip_vit_forward does:
images from host memory to the GPU, embeddings back to the host. Saves
torch_gpu.npy.

usage: bench_clip_gpu.py OUTDIR BATCHES
prints: "torch-gpu images/s: X" """
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "gen"))
import gen_clip_fixtures as g  # noqa: E402

out, batches = sys.argv[1], int(sys.argv[2])
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
dev = torch.device("cuda")
params = {k: torch.as_tensor(v, dtype=torch.float32, device=dev) for k, v in g.prng_params(g.B32, g.B32_PROJ).items()}
images = np.load(os.path.join(out, "images.npy"))  # host memory: each pass uploads it
batch = images.shape[0]

g.clip_image_embed(params, g.B32, images, dev)  # warm-up: cuBLAS/cuDNN handles, allocator
torch.cuda.synchronize()
t0 = time.perf_counter()
for _ in range(batches):
    emb = g.clip_image_embed(params, g.B32, images, dev)
dt = time.perf_counter() - t0
np.save(os.path.join(out, "torch_gpu.npy"), emb)
ref = np.load(os.path.join(out, "torch.npy"))
print("torch-gpu %s on %s: %.3f s for %d images, images/s: %.2f" % (torch.__version__, torch.cuda.get_device_name(),
                                                                   dt, batch * batches, batch * batches / dt))
print("max|torch-gpu - torch-cpu| / max|torch-cpu| = %.2e" % (np.abs(emb - ref).max() / np.abs(ref).max()))
