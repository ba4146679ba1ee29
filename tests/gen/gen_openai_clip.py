#!/usr/bin/python3
"""openai's CLIP file format, in small (tests/fixtures/clip/openai/):

  tiny.pt          a TorchScript archive laid out like openai's ViT-B-32.pt:
                   torch.jit.trace of a module tree written after openai's
                   clip/model.py (visual.conv1, class_embedding,
                   positional_embedding, ln_pre, transformer.resblocks.N with
                   nn.MultiheadAttention (in_proj_weight [3W, W]), mlp.c_fc /
                   c_proj and QuickGELU, ln_post, proj [W, D]; the text tower
                   and logit_scale; ints input_resolution, context_length,
                   vocab_size), weights converted to fp16 by openai's
                   convert_weights rule (conv, linear, attention, proj and
                   text_projection fp16; LayerNorms and embeddings fp32)
  hub/             the same weights as a hub directory (config.json +
                   model.safetensors, F16 where the .pt has fp16): the
                   mapping q/k/v = in_proj rows, visual_projection = proj^T
  io.safetensors   prng images [3, 3, 64, 64] and the embeddings of
                   openai's module (nn.MultiheadAttention's own forward),
                   run in float32 on the fp16 values, as clip.load does on
                   the CPU; also checked here against the hub-layout
                   reference of gen_clip_fixtures.py

W = 128 so that openai's rule heads = W / 64 gives 2 heads.
Run: /usr/bin/python3 tests/gen/gen_openai_clip.py
"""
import json
import os
import sys
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from gen_clip_fixtures import clip_image_embed, hub_config, prng_images, st_save  # noqa: E402

OUT = os.path.join(HERE, "..", "fixtures", "clip", "openai")
W, LAYERS, PATCH, GRID, D = 128, 2, 16, 4, 32
TW, CTX, VOCAB = 64, 8, 50


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, d, heads, attn_mask=None):
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads)
        self.ln_1 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(d, d * 4)), ("gelu", QuickGELU()),
                                              ("c_proj", nn.Linear(d * 4, d))]))
        self.ln_2 = nn.LayerNorm(d)
        self.attn_mask = attn_mask

    def forward(self, x):
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False, attn_mask=self.attn_mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width, layers, heads, attn_mask=None):
        super().__init__()
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(width, heads, attn_mask) for _ in range(layers)])

    def forward(self, x):
        return self.resblocks(x)


class VisionTransformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.input_resolution = PATCH * GRID
        self.output_dim = D
        self.conv1 = nn.Conv2d(3, W, kernel_size=PATCH, stride=PATCH, bias=False)
        scale = W ** -0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(W))
        self.positional_embedding = nn.Parameter(scale * torch.randn(GRID * GRID + 1, W))
        self.ln_pre = nn.LayerNorm(W)
        self.transformer = Transformer(W, LAYERS, W // 64)
        self.ln_post = nn.LayerNorm(W)
        self.proj = nn.Parameter(scale * torch.randn(W, D))

    def forward(self, x):
        x = self.conv1(x)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        cls = self.class_embedding + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding
        x = self.ln_pre(x).permute(1, 0, 2)
        x = self.transformer(x).permute(1, 0, 2)
        return self.ln_post(x[:, 0, :]) @ self.proj


class CLIP(nn.Module):
    def __init__(self):
        super().__init__()
        self.context_length = CTX
        self.vocab_size = VOCAB
        self.input_resolution = PATCH * GRID
        self.visual = VisionTransformer()
        mask = torch.full((CTX, CTX), float("-inf")).triu_(1)
        self.transformer = Transformer(TW, 1, 1, mask)
        self.token_embedding = nn.Embedding(VOCAB, TW)
        self.positional_embedding = nn.Parameter(0.01 * torch.randn(CTX, TW))
        self.ln_final = nn.LayerNorm(TW)
        self.text_projection = nn.Parameter(TW ** -0.5 * torch.randn(TW, D))
        self.logit_scale = nn.Parameter(torch.ones([]) * np.log(1 / 0.07))

    def forward(self, image):
        return self.visual(image)


def randomise(model):
    """LayerNorm gains around 1 and biases around 0, so the test exercises
    every parameter (the defaults are exactly 1 and 0)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("ln_1.weight", "ln_2.weight", "ln_pre.weight", "ln_post.weight", "ln_final.weight")):
                p.copy_(1 + 0.2 * (2 * torch.rand_like(p) - 1))
            elif name.endswith("bias"):
                p.copy_(0.1 * (2 * torch.rand_like(p) - 1))


def fp16_names(model):
    """openai's convert_weights: conv/linear weights and biases, attention
    in/out projections, proj and text_projection; not LayerNorms, not the
    embeddings."""
    out = set()
    for name, _ in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if any(k in name for k in ("conv1.", "c_fc.", "c_proj.", "out_proj.", "in_proj_")) or leaf in ("proj", "text_projection"):
            out.add(name)
    return out


def hub_tensors(sd):
    """openai state dict → hub names (vision tower only, plus a few text
    tensors the loader must skip)."""
    t = {
        "vision_model.embeddings.class_embedding": sd["visual.class_embedding"],
        "vision_model.embeddings.patch_embedding.weight": sd["visual.conv1.weight"],
        "vision_model.embeddings.position_embedding.weight": sd["visual.positional_embedding"],
        "vision_model.pre_layrnorm.weight": sd["visual.ln_pre.weight"],
        "vision_model.pre_layrnorm.bias": sd["visual.ln_pre.bias"],
        "vision_model.post_layernorm.weight": sd["visual.ln_post.weight"],
        "vision_model.post_layernorm.bias": sd["visual.ln_post.bias"],
        "visual_projection.weight": sd["visual.proj"].t().contiguous(),
        "text_projection.weight": sd["text_projection"].t().contiguous(),
        "logit_scale": sd["logit_scale"],
    }
    for n in range(LAYERS):
        o, h = f"visual.transformer.resblocks.{n}.", f"vision_model.encoder.layers.{n}."
        w, b = sd[o + "attn.in_proj_weight"], sd[o + "attn.in_proj_bias"]
        for i, qkv in enumerate(("q_proj", "k_proj", "v_proj")):
            t[h + f"self_attn.{qkv}.weight"] = w[i * W:(i + 1) * W]
            t[h + f"self_attn.{qkv}.bias"] = b[i * W:(i + 1) * W]
        pairs = {"attn.out_proj": "self_attn.out_proj", "ln_1": "layer_norm1", "ln_2": "layer_norm2",
                 "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
        for a, bname in pairs.items():
            t[h + bname + ".weight"] = sd[o + a + ".weight"]
            t[h + bname + ".bias"] = sd[o + a + ".bias"]
    return t


def main():
    torch.manual_seed(0x0A1C)
    os.makedirs(os.path.join(OUT, "hub"), exist_ok=True)
    model = CLIP().eval()
    randomise(model)
    S = PATCH * GRID
    images = torch.from_numpy(prng_images(3, S, seed=0x0A1D).copy())
    traced = torch.jit.trace(model, images[:1])
    # fp16 after tracing: the CPU has no fp16 kernels to trace with
    half = fp16_names(model)
    with torch.no_grad():
        for name, p in traced.named_parameters():
            if name in half:
                p.data = p.data.half()
    torch.jit.save(traced, os.path.join(OUT, "tiny.pt"))

    # the reference: openai's module in float32 on the stored values (clip.load on the CPU)
    sd = {k: v.detach() for k, v in torch.jit.load(os.path.join(OUT, "tiny.pt")).state_dict().items()}
    assert sd["visual.conv1.weight"].dtype == torch.float16 and sd["visual.ln_pre.weight"].dtype == torch.float32
    ref_model = CLIP().eval()
    ref_model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=False)
    with torch.no_grad():
        emb = ref_model.visual(images).numpy()

    hub = hub_tensors(sd)
    vc = {"hidden_size": W, "intermediate_size": 4 * W, "num_attention_heads": W // 64, "num_hidden_layers": LAYERS,
          "image_size": S, "patch_size": PATCH, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "num_channels": 3}
    dt = {torch.float16: "F16", torch.float32: "F32"}
    st_save(os.path.join(OUT, "hub", "model.safetensors"),
            [(k, v.float().numpy() if v.dtype == torch.float16 else v.numpy(), dt[v.dtype]) for k, v in sorted(hub.items())],
            {"format": "pt"})
    cfg = hub_config(vc, D, TW)
    with open(os.path.join(OUT, "hub", "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    # the two layouts describe one model: the hub reference agrees
    hub_emb = clip_image_embed({k: v.float().numpy() for k, v in hub.items() if k.startswith(("vision_model", "visual_"))},
                               vc, images.numpy())
    err = np.abs(hub_emb - emb).max() / np.abs(emb).max()
    assert err < 1e-5, err
    st_save(os.path.join(OUT, "io.safetensors"), [("images", images.numpy(), "F32"), ("embed", emb, "F32")])
    print("wrote", os.path.normpath(OUT), "hub vs openai reference: %.2e" % err)


if __name__ == "__main__":
    main()
