"""The plain-PyTorch ClipCap reference shared by the fixture generators
(gen_train_fixtures.py, gen_caption_fixtures.py, gen_decode.py): GPT-2 with
Hugging Face GPT2LMHeadModel semantics, the MLP and Transformer mappers in the
reference's state-dict layout, and GPT-2's byte alphabet. Written from
../shared/reference/CLIPCAP_FACTS.md; nothing is shared with the C code.

Sizes are arguments (each generator has its own tiny model). The init
functions draw from rnd(*shape, std=..., mean=...) in a fixed order, so a
generator's seed keeps giving the same tensors; a std left None is rnd's own
default.
"""
import math

import torch


def _std(std):
    return {} if std is None else {"std": std}


def layer_norm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def torch_layer_norm(x, w, b, eps=1e-5):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b, eps)


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


# ---------------- GPT-2 (hub names, Conv1D weights are [in, out]) ----------------
def gpt2_blocks_init(p, rnd, E, NL, attn_std=None, mlp_proj_std=None):
    """Adds NL blocks and ln_f to p (which holds wte/wpe)."""
    for l in range(NL):
        h = f"h.{l}."
        p[h + "ln_1.weight"] = rnd(E, std=0.1, mean=1.0)
        p[h + "ln_1.bias"] = rnd(E, std=0.1)
        p[h + "attn.c_attn.weight"] = rnd(E, 3 * E, **_std(attn_std))
        p[h + "attn.c_attn.bias"] = rnd(3 * E, std=0.1)
        p[h + "attn.c_proj.weight"] = rnd(E, E)
        p[h + "attn.c_proj.bias"] = rnd(E, std=0.1)
        p[h + "ln_2.weight"] = rnd(E, std=0.1, mean=1.0)
        p[h + "ln_2.bias"] = rnd(E, std=0.1)
        p[h + "mlp.c_fc.weight"] = rnd(E, 4 * E)
        p[h + "mlp.c_fc.bias"] = rnd(4 * E, std=0.1)
        p[h + "mlp.c_proj.weight"] = rnd(4 * E, E, **_std(mlp_proj_std))
        p[h + "mlp.c_proj.bias"] = rnd(E, std=0.1)
    p["ln_f.weight"] = rnd(E, std=0.1, mean=1.0)
    p["ln_f.bias"] = rnd(E, std=0.1)
    return p


def gpt2_forward(p, x, NH, NL, mask=None, eps=1e-5, ln=layer_norm, drop=None):
    """x: input embeddings [B, T, E] -> logits [B, T, V] (head tied to wte);
    mask: [B, T] (1 = attend) as HF applies it. ln: the layer norm;
    torch_layer_norm (what HF calls) rounds differently in the last bits.
    drop: training mode, drop(site, tensor) -> tensor applied where HF's
    GPT2Model applies dropout: site 0 after wte + wpe (drop), per layer l
    1+3l on the attention probabilities after softmax (attn_dropout),
    2+3l after attn.c_proj (resid_dropout), 3+3l after mlp.c_proj (mlp's
    dropout), each before its residual add."""
    if drop is None:
        drop = lambda site, z: z  # noqa: E731  (eval mode)
    b, t, E = x.shape
    hd = E // NH
    x = drop(0, x + p["wpe.weight"][:t])
    causal = torch.tril(torch.ones(t, t, dtype=torch.bool))
    neg = torch.finfo(torch.float32).min
    for l in range(NL):
        h = f"h.{l}."
        a = ln(x, p[h + "ln_1.weight"], p[h + "ln_1.bias"], eps)
        qkv = a @ p[h + "attn.c_attn.weight"] + p[h + "attn.c_attn.bias"]
        q, k, v = qkv.split(E, dim=-1)
        q, k, v = (z.view(b, t, NH, hd).transpose(1, 2) for z in (q, k, v))
        w = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        w = torch.where(causal, w, torch.tensor(neg))
        if mask is not None:
            w = w + (1.0 - mask[:, None, None, :]) * neg
        w = drop(1 + 3 * l, w.softmax(-1))
        y = (w @ v).transpose(1, 2).reshape(b, t, E)
        x = x + drop(2 + 3 * l, y @ p[h + "attn.c_proj.weight"] + p[h + "attn.c_proj.bias"])
        a = ln(x, p[h + "ln_2.weight"], p[h + "ln_2.bias"], eps)
        m = gelu_new(a @ p[h + "mlp.c_fc.weight"] + p[h + "mlp.c_fc.bias"])
        x = x + drop(3 + 3 * l, m @ p[h + "mlp.c_proj.weight"] + p[h + "mlp.c_proj.bias"])
    x = ln(x, p["ln_f.weight"], p["ln_f.bias"], eps)
    return x @ p["wte.weight"].t()


# ---------------- dropout masks (common/nn/ops_dropout_mask.h, gpt2.h) ----------------
_M64 = (1 << 64) - 1


def _mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def dropout_site_key(key, site):
    """gpt2_dropout_site_key: the key of call site `site` under a step's key."""
    return _mix64((key + (site + 1) * 0x9E3779B97F4A7C15) & _M64)


def dropout_keep(key, offset, n, p):
    """Boolean keep mask of elements offset .. offset+n-1 under key, as
    ops_dropout_kept computes it (numpy uint64 arithmetic wraps like C's)."""
    import numpy as np
    with np.errstate(over="ignore"):
        z = np.uint64(key) + (np.arange(offset + 1, offset + n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(40)).astype(np.float32) * np.float32(1.0 / 16777216.0)
    return u >= np.float32(p)


# ---------------- mappers (torch.nn.Linear layout [out, in]) ----------------
def mlp_init(rnd, E, D, K, out_std=None):
    h = E * K // 2
    return {
        "clip_project.model.0.weight": rnd(h, D),
        "clip_project.model.0.bias": rnd(h, std=0.1),
        "clip_project.model.2.weight": rnd(E * K, h, **_std(out_std)),
        "clip_project.model.2.bias": rnd(E * K, std=0.1),
    }


def mlp_forward(p, c, E):
    """c: CLIP embeddings [B, D] -> prefix [B, K, E]."""
    h = torch.tanh(c @ p["clip_project.model.0.weight"].t() + p["clip_project.model.0.bias"])
    y = h @ p["clip_project.model.2.weight"].t() + p["clip_project.model.2.bias"]
    return y.view(c.shape[0], -1, E)


def tmap_init(rnd, E, D, K, CLIP_LEN, MAP_LAYERS):
    p = {
        "clip_project.linear.weight": rnd(CLIP_LEN * E, D),
        "clip_project.linear.bias": rnd(CLIP_LEN * E, std=0.1),
        "clip_project.prefix_const": rnd(K, E, std=1.0),
    }
    for l in range(MAP_LAYERS):
        n = f"clip_project.transformer.layers.{l}."
        p[n + "norm1.weight"] = rnd(E, std=0.1, mean=1.0)
        p[n + "norm1.bias"] = rnd(E, std=0.1)
        p[n + "attn.to_queries.weight"] = rnd(E, E)
        p[n + "attn.to_keys_values.weight"] = rnd(2 * E, E)
        p[n + "attn.project.weight"] = rnd(E, E)
        p[n + "attn.project.bias"] = rnd(E, std=0.1)
        p[n + "norm2.weight"] = rnd(E, std=0.1, mean=1.0)
        p[n + "norm2.bias"] = rnd(E, std=0.1)
        p[n + "mlp.fc1.weight"] = rnd(2 * E, E)
        p[n + "mlp.fc1.bias"] = rnd(2 * E, std=0.1)
        p[n + "mlp.fc2.weight"] = rnd(E, 2 * E)
        p[n + "mlp.fc2.bias"] = rnd(E, std=0.1)
    return p


def tmap_forward(p, c, CLIP_LEN, MAP_LAYERS, MAP_HEADS, eps=1e-5):
    """c: CLIP embeddings [B, D] -> prefix [B, K, E] (K, E: prefix_const's shape)."""
    b = c.shape[0]
    K, E = p["clip_project.prefix_const"].shape
    hd = E // MAP_HEADS
    x = (c @ p["clip_project.linear.weight"].t() + p["clip_project.linear.bias"]).view(b, CLIP_LEN, E)
    x = torch.cat((x, p["clip_project.prefix_const"].unsqueeze(0).expand(b, K, E)), dim=1)
    t = x.shape[1]
    for l in range(MAP_LAYERS):
        n = f"clip_project.transformer.layers.{l}."
        a = layer_norm(x, p[n + "norm1.weight"], p[n + "norm1.bias"], eps)
        q = (a @ p[n + "attn.to_queries.weight"].t()).view(b, t, MAP_HEADS, hd)
        kv = (a @ p[n + "attn.to_keys_values.weight"].t()).view(b, t, 2, MAP_HEADS, hd)
        k, v = kv[:, :, 0], kv[:, :, 1]  # keys are the first E outputs
        att = torch.einsum("bnhd,bmhd->bnmh", q, k) * hd ** -0.5
        att = att.softmax(dim=2)
        y = torch.einsum("bnmh,bmhd->bnhd", att, v).reshape(b, t, E)
        x = x + (y @ p[n + "attn.project.weight"].t() + p[n + "attn.project.bias"])
        a = layer_norm(x, p[n + "norm2.weight"], p[n + "norm2.bias"], eps)
        m = torch.relu(a @ p[n + "mlp.fc1.weight"].t() + p[n + "mlp.fc1.bias"])
        x = x + (m @ p[n + "mlp.fc2.weight"].t() + p[n + "mlp.fc2.bias"])
    return x[:, CLIP_LEN:]


# ---------------- tokenizer ----------------
def bytes_to_unicode():
    """GPT-2's printable byte alphabet (openai/gpt-2 encoder.py): byte -> char."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))
