#!/usr/bin/python3
"""PyTorch side of bench/bench_caption.sh: the paper's own generation code
(generate2 = greedy, generate_beam = beam 5, exactly as tests/gen/
gen_decode.py transcribes them, without that file's margin tracking) on a
GPT-2 124M-shaped model with random weights, one prefix at a time, the
whole sequence recomputed every step, as the reference runs.

Writes OUTDIR/gpt2_124m (config.json + model.safetensors: what the C side
loads; kept between runs), OUTDIR/prefixes.npy (the MLP mapper's output,
k = 10, for random 512-d CLIP ViT-B/32 embeddings), and the reference's
token ids: OUTDIR/torch_greedy.txt (a line per prefix) and
OUTDIR/torch_beam.txt (5 lines per prefix, rank order).

The weights are random (GPT-2's init scale, blocks a bit stronger so that
captions differ between images) plus a length prior, so that greedy
captions end with "." after about 10 tokens as COCO captions do instead of
running to 67: wpe rows beyond position 16 get a growing component along
wte row 13, and wte row 13 is scaled by STOP_SCALE. The model directory is
rewritten when these settings change (MARK).

usage: bench_caption.py OUTDIR N_GREEDY N_BEAM THREADS [setup|cuda]
(setup: write the model and the prefixes only; cuda: decode on the GPU in
FP32 with TF32 off, weights resident there, as launch/device_check.sh
compares it with clipcap's CUDA backend; model and prefixes are made on the
CPU either way, so both devices decode the same numbers)
prints: "torch greedy ... captions/s: X" and "torch beam5 ... captions/s: Y" """
import json
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "gen"))
import gen_decode as gd  # noqa: E402
import gen_train_fixtures as gtf  # noqa: E402

out, n_greedy, n_beam, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
E, NL, NH, V, NPOS, K, D = 768, 12, 12, 50257, 1024, 10, 512
gd.E, gd.NL, gd.NH, gd.V, gd.NPOS = E, NL, NH, V, NPOS
gtf.E, gtf.K, gtf.D = E, K, D
STOP_SCALE = 3.2
MARK = f"seed 0, blocks std 0.05, stop ramp 1 from position 16, stop scale {STOP_SCALE}\n"


def gpt2_params(g):
    def rnd(*shape, std):
        return torch.randn(*shape, generator=g) * std

    p = {"wte.weight": rnd(V, E, std=0.02), "wpe.weight": rnd(NPOS, E, std=0.01)}
    u = p["wte.weight"][13] / p["wte.weight"][13].norm()
    p["wpe.weight"] += torch.clamp(torch.arange(NPOS, dtype=torch.float32) - 16, min=0)[:, None] * u
    p["wte.weight"][13] *= STOP_SCALE
    for l in range(NL):
        h = f"h.{l}."
        p[h + "ln_1.weight"], p[h + "ln_1.bias"] = torch.ones(E), torch.zeros(E)
        p[h + "attn.c_attn.weight"], p[h + "attn.c_attn.bias"] = rnd(E, 3 * E, std=0.05), torch.zeros(3 * E)
        p[h + "attn.c_proj.weight"], p[h + "attn.c_proj.bias"] = rnd(E, E, std=0.05), torch.zeros(E)
        p[h + "ln_2.weight"], p[h + "ln_2.bias"] = torch.ones(E), torch.zeros(E)
        p[h + "mlp.c_fc.weight"], p[h + "mlp.c_fc.bias"] = rnd(E, 4 * E, std=0.05), torch.zeros(4 * E)
        p[h + "mlp.c_proj.weight"], p[h + "mlp.c_proj.bias"] = rnd(4 * E, E, std=0.025), torch.zeros(E)
    p["ln_f.weight"], p["ln_f.bias"] = torch.ones(E), torch.zeros(E)
    return p


gen = torch.Generator().manual_seed(0)
params = gpt2_params(gen)
model_dir = os.path.join(out, "gpt2_124m")
mark = os.path.join(model_dir, "bench_params.txt")
if not os.path.exists(mark) or open(mark).read() != MARK:
    os.makedirs(model_dir, exist_ok=True)
    cfg = {"model_type": "gpt2", "n_embd": E, "n_head": NH, "n_layer": NL, "n_positions": NPOS, "n_ctx": NPOS,
           "vocab_size": V, "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new"}
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    gtf.save_safetensors(os.path.join(model_dir, "model.safetensors"), params)
    with open(mark, "w") as f:
        f.write(MARK)
with torch.no_grad():
    mapper = {n: t.detach() * 0.1 for n, t in gtf.mlp_init(gen).items()}
    clip = torch.randn(max(n_greedy, n_beam), D, generator=gen)
    prefixes = gtf.mlp_forward(mapper, clip)
np.save(os.path.join(out, "prefixes.npy"), prefixes.numpy().astype(np.float32))
if sys.argv[5:] == ["setup"]:
    sys.exit(0)
device = "cpu"
# bf16: the same decoding under torch.autocast("cpu", torch.bfloat16), as a
# PyTorch user asks for bf16 on a CPU; greedy only, tokens to *_bf16.txt
bf16 = sys.argv[5:] == ["bf16"]
if sys.argv[5:] == ["cuda"]:
    device = "cuda"
    torch.backends.cuda.matmul.allow_tf32 = False
    params = {n: t.to(device) for n, t in params.items()}
    prefixes = prefixes.to(device)
    # the reference makes its masks and beam bookkeeping with plain torch.ones
    # / torch.zeros: those must land on the GPU too
    if hasattr(torch, "set_default_device"):
        torch.set_default_device(device)
    else:
        torch.set_default_tensor_type(torch.cuda.FloatTensor)
gpt = gd.GPT(params)


def timed(fn, n):
    results = []
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(n):
            results.append(fn(prefixes[i : i + 1]))  # token lists: already back on the host
    return time.perf_counter() - t0, results


if bf16:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with torch.no_grad():
            gpt(prefixes[:1])
        dt, res = timed(lambda p: gd.generate2(gpt, p, track=False)[0], n_greedy)
    with open(os.path.join(out, "torch_greedy_bf16.txt"), "w") as f:
        f.writelines(" ".join(map(str, t)) + "\n" for t in res)
    print(f"torch {torch.__version__} greedy bf16 autocast, {threads} threads: {n_greedy} captions in {dt:.2f} s, "
          f"mean {np.mean([len(t) for t in res]):.1f} tokens, captions/s: {n_greedy / dt:.4f}")
    sys.exit(0)
with torch.no_grad():
    gpt(prefixes[:1])  # warm-up: allocator, thread pool
dt, res = timed(lambda p: gd.generate2(gpt, p, track=False)[0], n_greedy)
with open(os.path.join(out, "torch_greedy.txt"), "w") as f:
    f.writelines(" ".join(map(str, t)) + "\n" for t in res)
where = f"{threads} threads" if device == "cpu" else torch.cuda.get_device_name()
print(f"torch {torch.__version__} greedy, {where}: {n_greedy} captions in {dt:.2f} s, "
      f"mean {np.mean([len(t) for t in res]):.1f} tokens, captions/s: {n_greedy / dt:.4f}")
dt, res = timed(lambda p: gd.generate_beam(gpt, p, track=False)[0], n_beam)
with open(os.path.join(out, "torch_beam.txt"), "w") as f:
    f.writelines(" ".join(map(str, t)) + "\n" for r in res for t in r)
print(f"torch {torch.__version__} beam5, {where}: {n_beam} captions in {dt:.2f} s, "
      f"mean {np.mean([len(t) for r in res for t in r]):.1f} tokens per beam, captions/s: {n_beam / dt:.4f}")
