#!/usr/bin/python3
"""Fixtures for the forward ops and the CLIP image tower, computed with plain
PyTorch (no `transformers`): the reference below is written from the hub
layout's semantics (CLIPVisionModel + visual_projection), independently of
the C code.

Writes into tests/fixtures/clip/:
  ops_forward.safetensors  inputs and torch outputs of every forward op
  tiny/                    a tiny CLIP directory (config.json + model.safetensors,
                           F32, with text_model.* and position_ids to skip)
  tiny_half/               the same weights, some tensors stored F16 / BF16
  tiny_gelu/               the same F32 weights, hidden_act "gelu" (exact erf)
  tiny_pt/                 the same F32 weights as pytorch_model.bin (torch.save),
                           the only weights file of older hub snapshots
  tiny_io.safetensors      input images and each variant's embeddings
  embed_expected.txt       `clipcap embed --clip tiny` of a few image fixtures:
                           openai/CLIP's preprocessing (Pillow + torchvision)
                           then the reference tower; one line per image:
                           FILE v1 ... v16
  b32_io.safetensors       embeddings of a ViT-B/32-shaped model whose weights
                           and images come from the PRNG below (too big to
                           commit; the C test regenerates them)

The PRNG (documented in docs/nn.md, reimplemented in tests/unit/test_clip_vit.c):
element j (0-based) of a stream with seed s is
    z = s + (j + 1) * 0x9E3779B97F4A7C15            (mod 2^64)
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB
    z =  z ^ (z >> 31)                                (splitmix64)
    u = (z >> 40) / 2^24                              (exact in float32)
    value = center + scale * (2u - 1)                 (computed in float32)
Tensors draw consecutive elements of one stream in the order of
`vision_param_specs` (the images use their own stream), each with the
(center, scale) that function gives.

Run: /usr/bin/python3 tests/gen/gen_clip_fixtures.py
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "clip")

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
WEIGHT_SEED = 0x5EED0C11
IMAGE_SEED = 0x1A6E5EED


# ---------------------------------------------------------------- PRNG
def splitmix_uniform(seed, start, count):
    """Elements start..start+count of the stream, as float32 in [0, 1)."""
    with np.errstate(over="ignore"):
        j = np.arange(start + 1, start + count + 1, dtype=np.uint64)
        z = np.uint64(seed) + j * GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return ((z >> np.uint64(40)).astype(np.float32) * np.float32(1.0 / 16777216.0))


def prng_values(seed, start, count, center, scale):
    u = splitmix_uniform(seed, start, count)
    return np.float32(center) + np.float32(scale) * (np.float32(2.0) * u - np.float32(1.0))


# ---------------------------------------------------------------- safetensors
def st_save(path, tensors, metadata=None):
    """tensors: list of (name, array, dtype) with dtype in F32/F16/BF16/I32/I64."""
    header, blobs, off = {}, [], 0
    for name, arr, dt in tensors:
        arr = np.ascontiguousarray(arr)
        if dt == "F32":
            raw = arr.astype("<f4").tobytes()
        elif dt == "F16":
            raw = arr.astype("<f2").tobytes()
        elif dt == "BF16":
            raw = torch.from_numpy(arr.astype(np.float32)).to(torch.bfloat16).view(torch.int16).numpy().astype("<i2").tobytes()
        elif dt == "I32":
            raw = arr.astype("<i4").tobytes()
        elif dt == "I64":
            raw = arr.astype("<i8").tobytes()
        else:
            raise ValueError(dt)
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def stored_value(arr, dt):
    """What a reader gets back after the tensor was stored as dt."""
    if dt == "F16":
        return arr.astype(np.float16).astype(np.float32)
    if dt == "BF16":
        return torch.from_numpy(arr).to(torch.bfloat16).float().numpy()
    return arr


# ---------------------------------------------------------------- the CLIP reference
def vision_param_specs(vc, projection_dim):
    """(name, shape, center, scale) in PRNG order. Linear/conv weights are
    uniform with std about 1/sqrt(3·fan_in), LayerNorm gains around 1: the
    activations stay O(1) through every layer, so the test exercises real
    softmaxes and nonlinearities rather than saturated ones."""
    W, I, P, S = vc["hidden_size"], vc["intermediate_size"], vc["patch_size"], vc["image_size"]
    L = (S // P) ** 2 + 1
    specs = [
        ("vision_model.embeddings.class_embedding", [W], 0.0, 1.0),
        ("vision_model.embeddings.patch_embedding.weight", [W, 3, P, P], 0.0, 1.0 / math.sqrt(3 * P * P)),
        ("vision_model.embeddings.position_embedding.weight", [L, W], 0.0, 0.5),
        ("vision_model.pre_layrnorm.weight", [W], 1.0, 0.2),
        ("vision_model.pre_layrnorm.bias", [W], 0.0, 0.1),
    ]
    for n in range(vc["num_hidden_layers"]):
        p = f"vision_model.encoder.layers.{n}."
        specs += [
            (p + "layer_norm1.weight", [W], 1.0, 0.2),
            (p + "layer_norm1.bias", [W], 0.0, 0.1),
        ]
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            specs += [
                (p + f"self_attn.{proj}.weight", [W, W], 0.0, 1.0 / math.sqrt(W)),
                (p + f"self_attn.{proj}.bias", [W], 0.0, 0.1),
            ]
        specs += [
            (p + "layer_norm2.weight", [W], 1.0, 0.2),
            (p + "layer_norm2.bias", [W], 0.0, 0.1),
            (p + "mlp.fc1.weight", [I, W], 0.0, 1.0 / math.sqrt(W)),
            (p + "mlp.fc1.bias", [I], 0.0, 0.1),
            (p + "mlp.fc2.weight", [W, I], 0.0, 1.0 / math.sqrt(I)),
            (p + "mlp.fc2.bias", [W], 0.0, 0.1),
        ]
    specs += [
        ("vision_model.post_layernorm.weight", [W], 1.0, 0.2),
        ("vision_model.post_layernorm.bias", [W], 0.0, 0.1),
        ("visual_projection.weight", [projection_dim, W], 0.0, 1.0 / math.sqrt(W)),
    ]
    return specs


def prng_params(vc, projection_dim, seed=WEIGHT_SEED):
    params, start = {}, 0
    for name, shape, center, scale in vision_param_specs(vc, projection_dim):
        n = int(np.prod(shape))
        params[name] = prng_values(seed, start, n, center, scale).reshape(shape)
        start += n
    return params


def prng_images(B, S, seed=IMAGE_SEED):
    """Preprocessed-looking images: uniform in [-2, 2], CLIP's normalised range."""
    return prng_values(seed, 0, B * 3 * S * S, 0.0, 2.0).reshape(B, 3, S, S)


def clip_image_embed(params, vc, images, device="cpu"):
    """The hub's CLIPVisionModel (pooler_output) followed by visual_projection.
    params and images: numpy arrays, or tensors already on `device` (used as
    they are, so a GPU benchmark keeps its weights resident)."""
    t = {k: torch.as_tensor(v, dtype=torch.float32, device=device) for k, v in params.items()}
    x = torch.as_tensor(images, device=device)
    W, H, P = vc["hidden_size"], vc["num_attention_heads"], vc["patch_size"]
    D = W // H
    eps = vc.get("layer_norm_eps", 1e-5)
    act = vc.get("hidden_act", "quick_gelu")
    e = "vision_model.embeddings."
    with torch.no_grad():
        h = F.conv2d(x, t[e + "patch_embedding.weight"], stride=P)  # [B, W, g, g]
        h = h.flatten(2).transpose(1, 2)  # [B, g*g, W]
        B = h.shape[0]
        cls = t[e + "class_embedding"].expand(B, 1, W)
        h = torch.cat([cls, h], dim=1) + t[e + "position_embedding.weight"][None]
        h = F.layer_norm(h, (W,), t["vision_model.pre_layrnorm.weight"], t["vision_model.pre_layrnorm.bias"], eps)
        T = h.shape[1]
        for n in range(vc["num_hidden_layers"]):
            p = f"vision_model.encoder.layers.{n}."
            lin = lambda z, name: F.linear(z, t[p + name + ".weight"], t[p + name + ".bias"])
            r = h
            z = F.layer_norm(h, (W,), t[p + "layer_norm1.weight"], t[p + "layer_norm1.bias"], eps)
            q = lin(z, "self_attn.q_proj").view(B, T, H, D).transpose(1, 2) * (D ** -0.5)
            k = lin(z, "self_attn.k_proj").view(B, T, H, D).transpose(1, 2)
            v = lin(z, "self_attn.v_proj").view(B, T, H, D).transpose(1, 2)
            a = torch.softmax(q @ k.transpose(-1, -2), dim=-1) @ v
            a = a.transpose(1, 2).reshape(B, T, W)
            h = r + lin(a, "self_attn.out_proj")
            r = h
            z = F.layer_norm(h, (W,), t[p + "layer_norm2.weight"], t[p + "layer_norm2.bias"], eps)
            z = lin(z, "mlp.fc1")
            if act == "quick_gelu":
                z = z * torch.sigmoid(1.702 * z)
            elif act == "gelu":
                z = F.gelu(z)
            else:
                raise ValueError(act)
            h = r + lin(z, "mlp.fc2")
        pooled = F.layer_norm(h[:, 0], (W,), t["vision_model.post_layernorm.weight"],
                              t["vision_model.post_layernorm.bias"], eps)
        return F.linear(pooled, t["visual_projection.weight"]).float().cpu().numpy()


def hub_config(vc, projection_dim, text_width):
    return {
        "architectures": ["CLIPModel"],
        "model_type": "clip",
        "projection_dim": projection_dim,
        "logit_scale_init_value": 2.6592,
        "text_config": {"hidden_size": text_width, "intermediate_size": 4 * text_width,
                        "num_attention_heads": 2, "num_hidden_layers": 1, "vocab_size": 50,
                        "max_position_embeddings": 8, "hidden_act": "quick_gelu"},
        "vision_config": dict(vc),
        "torch_dtype": "float32",
    }


def write_clip_dir(path, vc, projection_dim, params, dtypes):
    """A hub-layout directory. dtypes maps name -> stored dtype (default F32).
    A few text-tower tensors and the position_ids buffer go first, so the
    loader must skip them by name."""
    os.makedirs(path, exist_ok=True)
    tw = 16
    rng = np.random.default_rng(7)
    L = (vc["image_size"] // vc["patch_size"]) ** 2 + 1
    tensors = [
        ("logit_scale", np.array(2.6592, dtype=np.float32), "F32"),
        ("text_model.embeddings.token_embedding.weight", rng.standard_normal((50, tw)).astype(np.float32), "F32"),
        ("text_model.final_layer_norm.weight", np.ones(tw, np.float32), "F32"),
        ("text_projection.weight", rng.standard_normal((projection_dim, tw)).astype(np.float32), "F32"),
        ("vision_model.embeddings.position_ids", np.arange(L, dtype=np.int64)[None], "I64"),
    ]
    # Hub files list tensors alphabetically; so do we, the loader must not
    # depend on order.
    for name in sorted(params):
        tensors.append((name, params[name], dtypes.get(name, "F32")))
    st_save(os.path.join(path, "model.safetensors"), tensors, {"format": "pt"})
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(hub_config(vc, projection_dim, tw), f, indent=2)
        f.write("\n")


# ---------------------------------------------------------------- fixtures
TINY = {"hidden_size": 32, "intermediate_size": 48, "num_attention_heads": 4, "num_hidden_layers": 2,
        "image_size": 32, "patch_size": 8, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
        "num_channels": 3}
TINY_PROJ = 16
B32 = {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12, "num_hidden_layers": 12,
       "image_size": 224, "patch_size": 32, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
       "num_channels": 3}
B32_PROJ = 512


def gen_tiny():
    params = prng_params(TINY, TINY_PROJ, seed=0x7111)
    images = prng_images(3, TINY["image_size"], seed=0x7112)
    write_clip_dir(os.path.join(OUT, "tiny"), TINY, TINY_PROJ, params, {})
    # Half-precision variant: the reference runs on the rounded values.
    half = {}
    for i, name in enumerate(sorted(params)):
        if "layers.0." in name or "visual_projection" in name:
            half[name] = "F16" if i % 2 == 0 else "BF16"
        elif "patch_embedding" in name:
            half[name] = "BF16"
    write_clip_dir(os.path.join(OUT, "tiny_half"), TINY, TINY_PROJ, params, half)
    rounded = {k: stored_value(v, half.get(k, "F32")) for k, v in params.items()}
    # Older hub snapshots ship only pytorch_model.bin (torch.save of the state dict).
    pt_dir = os.path.join(OUT, "tiny_pt")
    os.makedirs(pt_dir, exist_ok=True)
    L = (TINY["image_size"] // TINY["patch_size"]) ** 2 + 1
    sd = {"vision_model.embeddings.position_ids": torch.arange(L)[None], "logit_scale": torch.tensor(2.6592)}
    sd.update({k: torch.from_numpy(v.copy()) for k, v in sorted(params.items())})
    torch.save(sd, os.path.join(pt_dir, "pytorch_model.bin"))
    with open(os.path.join(pt_dir, "config.json"), "w") as f:
        json.dump(hub_config(TINY, TINY_PROJ, 16), f, indent=2)
        f.write("\n")
    gelu = dict(TINY, hidden_act="gelu")
    write_clip_dir(os.path.join(OUT, "tiny_gelu"), gelu, TINY_PROJ, params, {})
    st_save(os.path.join(OUT, "tiny_io.safetensors"), [
        ("images", images, "F32"),
        ("embed", clip_image_embed(params, TINY, images), "F32"),
        ("embed_half", clip_image_embed(rounded, TINY, images), "F32"),
        ("embed_gelu", clip_image_embed(params, gelu, images), "F32"),
    ])


EMBED_IMAGES = ["jpeg_baseline_down.jpg", "jpeg_444_odd.jpg", "jpeg_progressive.jpg", "png_rgba_down.png",
                "png_palette.png", "png_grey.png", "png_rgb_wide.png"]


def gen_embed_expected():
    from PIL import Image
    from torchvision import transforms as TV
    S = TINY["image_size"]
    tf = TV.Compose([TV.Resize(S, interpolation=TV.InterpolationMode.BICUBIC), TV.CenterCrop(S),
                     lambda im: im.convert("RGB"), TV.ToTensor(),
                     TV.Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))])
    params = prng_params(TINY, TINY_PROJ, seed=0x7111)
    src = os.path.join(OUT, "..", "image", "src")
    images = np.stack([tf(Image.open(os.path.join(src, f))).numpy() for f in EMBED_IMAGES])
    emb = clip_image_embed(params, TINY, images)
    with open(os.path.join(OUT, "embed_expected.txt"), "w") as f:
        for name, v in zip(EMBED_IMAGES, emb):
            f.write(name + " " + " ".join("%.9g" % x for x in v) + "\n")


def gen_b32():
    params = prng_params(B32, B32_PROJ)
    images = prng_images(2, B32["image_size"])
    torch.set_num_threads(1)  # deterministic summation order for the record
    st_save(os.path.join(OUT, "b32_io.safetensors"), [
        ("embed", clip_image_embed(params, B32, images), "F32"),
        ("first_weights", params["vision_model.embeddings.class_embedding"][:4], "F32"),
        ("first_images", images.reshape(-1)[:4], "F32"),
    ], {"weight_seed": str(WEIGHT_SEED), "image_seed": str(IMAGE_SEED), "batch": "2"})


def gen_ops():
    g = torch.Generator().manual_seed(1234)
    rnd = lambda *s: torch.randn(*s, generator=g)
    T = []
    add = lambda name, x, dt="F32": T.append((name, x.numpy() if torch.is_tensor(x) else x, dt))

    M, K, N = 13, 37, 19
    x, w, b = rnd(M, K), rnd(N, K), rnd(N)
    add("matmul.in", x); add("matmul.w_nk", w); add("matmul.w_kn", w.t().contiguous()); add("matmul.bias", b)
    add("matmul.out", x @ w.t()); add("matmul.out_bias", F.linear(x, w, b))

    # big enough for ops_cpu_gemm to split C by columns (wide) and by rows (tall)
    for tag, (M, K, N) in (("wide", (70, 64, 300)), ("tall", (300, 64, 40))):
        x, w, b = rnd(M, K), rnd(N, K), rnd(N)
        add(f"matmul_{tag}.in", x); add(f"matmul_{tag}.w_nk", w); add(f"matmul_{tag}.w_kn", w.t().contiguous())
        add(f"matmul_{tag}.bias", b); add(f"matmul_{tag}.out_bias", F.linear(x, w, b))

    x = rnd(6, 50) * 2 + 3.0
    gam, bet = rnd(50), rnd(50)
    add("ln.in", x); add("ln.g", gam); add("ln.b", bet)
    add("ln.out", F.layer_norm(x, (50,), gam, bet, 1e-5))
    add("ln.mean", x.mean(1)); add("ln.rstd", 1.0 / torch.sqrt(x.var(1, unbiased=False) + 1e-5))

    n = 10007  # above the parallel threshold, odd to catch tail handling
    x, y = rnd(n) * 3, rnd(n)
    add("ew.x", x); add("ew.y", y); add("ew.add", x + y)
    add("ew.gelu_tanh", F.gelu(x, approximate="tanh")); add("ew.gelu_erf", F.gelu(x))
    add("ew.quick_gelu", x * torch.sigmoid(1.702 * x)); add("ew.tanh", torch.tanh(x)); add("ew.relu", F.relu(x))
    add("ew.scale", x * 0.37); add("ew.sum_squares", (x.double() ** 2).sum().float().reshape(1))

    def attention_ref(q, k, v, causal):
        B, Tq, H, D = q.shape
        Tk = k.shape[1]
        s = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(D)
        if causal:
            i = torch.arange(Tq)[:, None]
            j = torch.arange(Tk)[None, :]
            s = s.masked_fill(j > i + (Tk - Tq), float("-inf"))
        p = torch.softmax(s, -1)
        return torch.einsum("bhqk,bkhd->bqhd", p, v).reshape(B, Tq, H * D), p

    B, H, D, Tn = 2, 3, 8, 5
    C = H * D
    qkv = rnd(B, Tn, 3 * C)
    q, k, v = qkv.split(C, -1)
    o, p = attention_ref(q.reshape(B, Tn, H, D), k.reshape(B, Tn, H, D), v.reshape(B, Tn, H, D), False)
    add("attn.qkv", qkv); add("attn.out", o); add("attn.probs", p)
    Tq, Tk = 3, 7
    q, kv = rnd(B, Tq, C), rnd(B, Tk, 2 * C)
    k, v = kv.split(C, -1)
    o, p = attention_ref(q.reshape(B, Tq, H, D), k.reshape(B, Tk, H, D), v.reshape(B, Tk, H, D), True)
    add("attnc.q", q); add("attnc.kv", kv); add("attnc.out", o); add("attnc.probs", p)

    # more keys than one online-softmax chunk (256): the running max and
    # normaliser are carried across chunks; causal with Tq = Tk
    B, H, D, Tn = 1, 2, 16, 300
    C = H * D
    q, kv = rnd(B, Tn, C) * 2, rnd(B, Tn, 2 * C)
    k, v = kv.split(C, -1)
    for causal in (False, True):
        o, p = attention_ref(q.reshape(B, Tn, H, D), k.reshape(B, Tn, H, D), v.reshape(B, Tn, H, D), causal)
        add(f"attnl.out{int(causal)}", o)
    add("attnl.q", q); add("attnl.kv", kv)

    table = rnd(10, 6)
    ids = torch.tensor([3, 0, 9, 3, 7, 1, 3], dtype=torch.int32)
    add("gather.table", table); add("gather.ids", ids.numpy(), "I32"); add("gather.out", table[ids.long()])

    img = rnd(2, 3, 16, 16)
    add("im2patch.images", img)
    add("im2patch.out", F.unfold(img, kernel_size=4, stride=4).transpose(1, 2).contiguous())

    logits = rnd(6, 11) * 3
    tg = torch.tensor([4, -1, 0, 10, 2, 2], dtype=torch.int32)
    add("ce.logits", logits); add("ce.targets", tg.numpy(), "I32")
    add("ce.losses", F.cross_entropy(logits, tg.long(), ignore_index=-1, reduction="none"))
    add("ce.mean", F.cross_entropy(logits, tg.long(), ignore_index=-1).reshape(1))

    p0 = rnd(50)
    grads = rnd(3, 50)
    param = torch.nn.Parameter(p0.clone())
    opt = torch.optim.AdamW([param], lr=1e-2, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.1)
    for s in range(3):
        param.grad = grads[s].clone()
        opt.step()
    st = opt.state[param]
    add("adamw.p0", p0); add("adamw.grads", grads); add("adamw.p3", param.detach())
    add("adamw.m3", st["exp_avg"]); add("adamw.v3", st["exp_avg_sq"])

    st_save(os.path.join(OUT, "ops_forward.safetensors"), T)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    gen_ops()
    gen_tiny()
    gen_embed_expected()
    if "--no-b32" not in sys.argv:
        gen_b32()
    print("wrote", os.path.normpath(OUT))
