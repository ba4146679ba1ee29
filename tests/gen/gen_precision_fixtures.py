#!/usr/bin/python3
"""Reduced-precision references (--precision bf16|fp16, docs/nn.md
"Precision"), computed with PyTorch independently of the C code.

What a bf16 (fp16) GEMM with float32 accumulation computes is the float32
product of the operands rounded to bf16 (fp16): torch's own rounding
(.to(torch.bfloat16) / .to(torch.float16), round to nearest even) gives the
operands, and F.linear / F.conv2d on their float32 values gives exact
products (8- or 11-bit significands multiply exactly in float32) summed in
float32 -- what AVX512-BF16's dot products and tensor cores do, and what
torch's bf16 CPU matmul does before it rounds its output. Everything else
(LayerNorm, softmax, attention, the activations) stays float32, as in the
backends.

Writes tests/fixtures/precision/ref.safetensors:
  mm.{in,w_nk,w_kn,bias,dout}           one GEMM's operands (M 37, K 70, N 45)
  mm.{bf16,fp16}.{out,din,dw_nk,dw_kn}  forward with bias, input and weight
                                        gradients (weight gradient in both
                                        layouts)
  clip.{bf16,fp16}                      the tiny CLIP tower (fixtures/clip/tiny,
                                        images of tiny_io.safetensors) with every
                                        linear layer and the patch convolution
                                        on rounded operands

Run: /usr/bin/python3 tests/gen/gen_precision_fixtures.py
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_clip_fixtures as clip  # noqa: E402

OUT = os.path.join(HERE, "..", "fixtures", "precision")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def rounded(x, dt):
    return x.to(dt).float()


def gen():
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(4321)
    M, K, N = 37, 70, 45
    x, w, b, dout = (torch.randn(M, K, generator=g), torch.randn(N, K, generator=g), torch.randn(N, generator=g),
                     torch.randn(M, N, generator=g))
    T = [("mm.in", x.numpy(), "F32"), ("mm.w_nk", w.numpy(), "F32"), ("mm.w_kn", w.t().contiguous().numpy(), "F32"),
         ("mm.bias", b.numpy(), "F32"), ("mm.dout", dout.numpy(), "F32")]
    for name, dt in DTYPES.items():
        xr, wr, dr = rounded(x, dt), rounded(w, dt), rounded(dout, dt)
        T += [(f"mm.{name}.out", F.linear(xr, wr, b).numpy(), "F32"),
              (f"mm.{name}.din", (dr @ wr).numpy(), "F32"),
              (f"mm.{name}.dw_nk", (dr.t() @ xr).numpy(), "F32"),
              (f"mm.{name}.dw_kn", (xr.t() @ dr).numpy(), "F32")]

    params = clip.prng_params(clip.TINY, clip.TINY_PROJ, seed=0x7111)
    images = clip.prng_images(3, clip.TINY["image_size"], seed=0x7112)
    linear, conv2d = F.linear, F.conv2d
    for name, dt in DTYPES.items():
        F.linear = lambda z, wt, bias=None: linear(rounded(z, dt), rounded(wt, dt), bias)
        F.conv2d = lambda z, wt, *a, **k: conv2d(rounded(z, dt), rounded(wt, dt), *a, **k)
        try:
            T.append((f"clip.{name}", clip.clip_image_embed(params, clip.TINY, images), "F32"))
        finally:
            F.linear, F.conv2d = linear, conv2d
    clip.st_save(os.path.join(OUT, "ref.safetensors"), T)


if __name__ == "__main__":
    gen()
    print("wrote", os.path.normpath(OUT))
