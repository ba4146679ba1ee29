#!/usr/bin/python3
"""A tiny CLIP image tower for synthetic shapes, written as a hub-layout
fixture into tests/fixtures/clip/shapes/ (config.json + model.safetensors:
vision_model.* and visual_projection, plus the few text-tower tensors the
loader must skip), so that captioners trained on its embeddings can name
each shape's colour AND kind. The random towers of gen_learn_clip.py keep
colour only (a linear probe on shape is at chance).

Why partly built by hand: a ViT of this size trained from scratch here (64
and 48 px, 8 px patches, width 64-96, 2 layers; multi-label heads on
colour, shape, pairs, background, position; up to 24 epochs of 3000
images, all a 2-core machine allows) learnt colour and position but left
shape at chance. What shape needs is a histogram of edge orientations: the
sum over the image of |directional derivative| for 8 orientations gives a
ridge probe 0.97-0.98 of the shapes (numpy, on the same images). So:

  - patch embedding (48 px, 8 px patches, W = 96): the x and y grey
    gradients of each patch's 16 2x2 blocks, and the patch's mean colour;
  - layer 0: no attention; its MLP (256 units) takes |cos t gx + sin t gy|
    of every block for 8 orientations t and sums them into the patch's
    orientation energies;
  - layer 1: pools into the class token with two heads: uniform (the
    image's mean colour and orientation energies) and attention to the
    patches with the most edge energy (the outlines: the shapes' colour);
    the final LayerNorm normalises the pooled profile;
  - visual_projection (96 -> 128) is TRAINED: on the pooled features of
    3000 `clipcap synth --seed 7 --square` images, through a linear head on
    what the captions say (multi-hot from synth_index.json: the colours,
    shapes and (colour, shape) pairs present, the background, one or two
    shapes, a lone shape's size and position words, for two the axis and
    which pair is on the top / left), binary cross-entropy per label
    group, AdamW, full batch. The head is dropped.

Images are preprocessed as openai/CLIP does (Pillow + torchvision: Resize
bicubic, CenterCrop, convert RGB, Normalize), which `clipcap extract`
reproduces; square images, so the centre crop keeps every shape.

Check (printed, after writing the fixture): `clipcap synth --seed 1
--count 800 --square` (the demo's seed and kind of images) -> `clipcap shard` -> `clipcap
extract` with the new fixture -> `clipcap store dump`; a ridge probe fitted
on the Karpathy train+restval embeddings (600 images) predicts, on the 200
held-out val+test images, the colour and the shape (argmax of the probe's
scores; a hit when the image holds that colour / shape), next to the
majority rate. So the check reads OUR pipeline's embeddings, not torch's;
it also prints the largest difference between torch's embeddings and ours.

Deterministic: fixed constants and seeds, 1 thread.

Run: /usr/bin/python3 tests/gen/train_tiny_clip.py [--clipcap build/clipcap] [--out DIR]
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_clip_fixtures as G  # noqa: E402

OUT = os.path.join(HERE, "..", "fixtures", "clip", "shapes")
VC = {"hidden_size": 96, "intermediate_size": 256, "num_attention_heads": 4, "num_hidden_layers": 2,
      "image_size": 48, "patch_size": 8, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
      "num_channels": 3}
PROJ = 128
SEED = 0x5AE5
C_BIG, GRAD_SCALE, EDGE_GAIN, ENERGY_SCALE, N_ORIENT = 200.0, 1.0 / 6, 3.0, 0.1, 8
ATTEND_GAIN = 4.0
TRAIN_SEED, TRAIN_COUNT = 7, 3000
PROBE_SEED, PROBE_COUNT = 1, 800
STEPS, LR = 3000, 1e-2

# common/data/synth_scene.c's vocabulary.
COLOURS = ["red", "green", "blue", "yellow", "orange", "purple", "pink", "brown",
           "black", "dark grey", "grey", "light grey", "white"]
SHAPES = ["circle", "square", "triangle", "diamond"]
BACKGROUNDS = ["white", "black", "grey"]
POSITIONS = ["in the center", "on the left", "on the right", "at the top", "at the bottom"]
PAIRS = [(c, s) for c in COLOURS for s in SHAPES]
# The label groups, in the order of labels(); each weighs the same in the loss.
GROUPS = [len(COLOURS), len(SHAPES), len(PAIRS), len(BACKGROUNDS), 1, 1 + len(POSITIONS), 1 + len(PAIRS)]
N_LABELS = sum(GROUPS)


def labels(rec):
    """The multi-hot target of one synth_index.json record."""
    y = np.zeros(N_LABELS, np.float32)
    objs = rec["objects"]
    o = 0
    for ob in objs:
        y[o + COLOURS.index(ob["color"])] = 1
    o += len(COLOURS)
    for ob in objs:
        y[o + SHAPES.index(ob["shape"])] = 1
    o += len(SHAPES)
    for ob in objs:
        y[o + PAIRS.index((ob["color"], ob["shape"]))] = 1
    o += len(PAIRS)
    y[o + BACKGROUNDS.index(rec["background"]["color"])] = 1
    o += len(BACKGROUNDS)
    y[o] = len(objs) == 2
    o += 1
    if len(objs) == 1:
        # Size and position words, as the captions use them (phrasing 1 is
        # "NP POS of the image").
        cap = rec["captions"][1].lower()
        y[o] = " large " in cap
        for k, p in enumerate(POSITIONS):
            if p in cap:
                y[o + 1 + k] = 1
    o += 1 + len(POSITIONS)
    if len(objs) == 2:
        a, b = objs
        vertical = abs(a["y"] - b["y"]) > abs(a["x"] - b["x"])
        y[o] = vertical
        first = min(objs, key=lambda ob: ob["y"] if vertical else ob["x"])
        y[o + 1 + PAIRS.index((first["color"], first["shape"]))] = 1
    return y


def synth(clipcap, out, seed, count, layouts):
    subprocess.run([clipcap, "synth", "--out", out, "--count", str(count), "--seed", str(seed),
                    "--layouts", layouts, "--large", "0", "--square"], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return json.load(open(os.path.join(out, "synth_index.json")))["records"]


def load_images(root, recs):
    """openai/CLIP's _transform at our size."""
    S = VC["image_size"]
    tf = Compose([Resize(S, interpolation=InterpolationMode.BICUBIC), CenterCrop(S),
                  lambda im: im.convert("RGB"), ToTensor(),
                  Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))])
    return torch.stack([tf(Image.open(os.path.join(root, r["coco_path"]))) for r in recs])


def built_tower():
    """The tower's starting weights: a gradient-orientation front end built
    by hand, then uniform pooling (see the module docstring). Dims of the
    W = 96 residual stream (paired +/- so that LayerNorm's mean is 0 and it
    only rescales): 0/1 = +C/-C on every token (position embedding: LN's
    scale stays about sqrt(W/2)/C whatever the patch holds); 2..33 the
    x/y grey gradients of the patch's 16 2x2 blocks, 34..65 their negation;
    66..68 the patch's mean R, G, B, 69..71 negated; 72..79 the 8
    orientation energies (layer 0's MLP), 80..87 negated."""
    W, I, P, S = VC["hidden_size"], VC["intermediate_size"], VC["patch_size"], VC["image_size"]
    p = {n: torch.zeros(shape) for n, shape, _, _ in G.vision_param_specs(VC, PROJ)}
    for n in p:
        if n.endswith("norm1.weight") or n.endswith("norm2.weight") or "layrnorm.weight" in n or "layernorm.weight" in n:
            p[n].fill_(1.0)
    e = "vision_model.embeddings."
    p[e + "position_embedding.weight"][:, 0] = C_BIG
    p[e + "position_embedding.weight"][:, 1] = -C_BIG
    pe = p[e + "patch_embedding.weight"]  # [W, 3, P, P]
    nb = P // 2
    for bi in range(nb):
        for bj in range(nb):
            k = bi * nb + bj
            r, c = slice(2 * bi, 2 * bi + 2), slice(2 * bj, 2 * bj + 2)
            pe[2 + 2 * k, :, r, 2 * bj + 1] += GRAD_SCALE
            pe[2 + 2 * k, :, r, 2 * bj] -= GRAD_SCALE
            pe[3 + 2 * k, :, 2 * bi + 1, c] += GRAD_SCALE
            pe[3 + 2 * k, :, 2 * bi, c] -= GRAD_SCALE
    pe[34:66] = -pe[2:34]
    for ch in range(3):
        pe[66 + ch, ch] = 1.0 / (P * P)
        pe[69 + ch, ch] = -1.0 / (P * P)
    # Layer 0: no attention; the MLP computes |directional derivative| of
    # every block for 8 orientations (quick_gelu(a) + quick_gelu(-a) =
    # a tanh(0.851 a), |a| for strong edges, ~0 for faint noise) and sums
    # the blocks into the patch's orientation energies.
    inv_ln = C_BIG / math.sqrt(W / 2)
    l0 = "vision_model.encoder.layers.0."
    for k in range(nb * nb):
        for j in range(N_ORIENT):
            th = math.pi * j / N_ORIENT
            u = 2 * (k * N_ORIENT + j)
            for sign, row in ((1, u), (-1, u + 1)):
                p[l0 + "mlp.fc1.weight"][row, 2 + 2 * k] = sign * EDGE_GAIN * inv_ln * math.cos(th)
                p[l0 + "mlp.fc1.weight"][row, 3 + 2 * k] = sign * EDGE_GAIN * inv_ln * math.sin(th)
                p[l0 + "mlp.fc2.weight"][72 + j, row] = ENERGY_SCALE / EDGE_GAIN
                p[l0 + "mlp.fc2.weight"][80 + j, row] = -ENERGY_SCALE / EDGE_GAIN
    # Layer 1 pools into the class token with two heads (head_dim 24): head
    # 0 (dims 0..23) has q = k = 0, uniform attention: the mean colour and
    # energies of the image; head 1 (dims 24..47) attends to the patches
    # with the most edge energy (q: the +C dim, k: the patch's total
    # energy), i.e. to the shapes' outlines: their mean colour mixes the
    # shapes' colour with the background's, which head 0 gives, so the
    # shapes' colour is a linear function of the two. Its MLP's bias
    # removes +/-C from the class token, so the final LayerNorm normalises
    # what was pooled (contrast and size drop out of the orientation
    # profile).
    l1 = "vision_model.encoder.layers.1."
    hd = W // VC["num_attention_heads"]
    for i, d in enumerate(range(66, 88)):
        p[l1 + "self_attn.v_proj.weight"][i, d] = inv_ln
        p[l1 + "self_attn.out_proj.weight"][d, i] = 1.0
    for i, d in enumerate(range(66, 69)):
        p[l1 + "self_attn.v_proj.weight"][hd + i, d] = inv_ln
        p[l1 + "self_attn.out_proj.weight"][88 + i, hd + i] = 1.0
    p[l1 + "self_attn.q_proj.weight"][hd, 0] = inv_ln  # q = LN(+C) = about 1 on every token
    for j in range(N_ORIENT):
        p[l1 + "self_attn.k_proj.weight"][hd, 72 + j] = inv_ln * ATTEND_GAIN
    for d in range(66, 91):
        p["visual_projection.weight"][d - 66, d] = 1.0
    p[l1 + "mlp.fc2.bias"][0] = -C_BIG
    p[l1 + "mlp.fc2.bias"][1] = C_BIG
    return p


class Tower(torch.nn.Module):
    """The hub's CLIPVisionModel + visual_projection, parameters under the
    hub's names (gen_clip_fixtures.clip_image_embed is the same maths)."""

    def __init__(self, params):
        super().__init__()
        self.p = torch.nn.ParameterDict({n.replace(".", "/"): torch.nn.Parameter(w.clone()) for n, w in params.items()})

    def t(self, name):
        return self.p[name.replace(".", "/")]

    def pooled(self, x):
        W, H, P = VC["hidden_size"], VC["num_attention_heads"], VC["patch_size"]
        D, eps = W // H, VC["layer_norm_eps"]
        e = "vision_model.embeddings."
        h = F.conv2d(x, self.t(e + "patch_embedding.weight"), stride=P).flatten(2).transpose(1, 2)
        B = h.shape[0]
        h = torch.cat([self.t(e + "class_embedding").expand(B, 1, W), h], 1) + self.t(e + "position_embedding.weight")
        h = F.layer_norm(h, (W,), self.t("vision_model.pre_layrnorm.weight"), self.t("vision_model.pre_layrnorm.bias"), eps)
        T = h.shape[1]
        for n in range(VC["num_hidden_layers"]):
            p = f"vision_model.encoder.layers.{n}."

            def lin(z, name):
                return F.linear(z, self.t(p + name + ".weight"), self.t(p + name + ".bias"))
            z = F.layer_norm(h, (W,), self.t(p + "layer_norm1.weight"), self.t(p + "layer_norm1.bias"), eps)
            q = lin(z, "self_attn.q_proj").view(B, T, H, D).transpose(1, 2) * D ** -0.5
            k = lin(z, "self_attn.k_proj").view(B, T, H, D).transpose(1, 2)
            v = lin(z, "self_attn.v_proj").view(B, T, H, D).transpose(1, 2)
            a = (torch.softmax(q @ k.transpose(-1, -2), -1) @ v).transpose(1, 2).reshape(B, T, W)
            h = h + lin(a, "self_attn.out_proj")
            z = F.layer_norm(h, (W,), self.t(p + "layer_norm2.weight"), self.t(p + "layer_norm2.bias"), eps)
            z = lin(z, "mlp.fc1")
            h = h + lin(z * torch.sigmoid(1.702 * z), "mlp.fc2")
        return F.layer_norm(h[:, 0], (W,), self.t("vision_model.post_layernorm.weight"),
                            self.t("vision_model.post_layernorm.bias"), eps)

    def forward(self, x):
        return F.linear(self.pooled(x), self.t("visual_projection.weight"))


def train(x, y):
    """Fits visual_projection: the built tower's pooled features (computed
    once: the front end and the pooling stay as built) through the
    projection and a linear head on every label group, AdamW, full batch.
    The head is dropped; the projection keeps the directions the labels
    need, scaled so that each matters to a mapper trained on it."""
    g = torch.Generator().manual_seed(SEED)
    tower = Tower(built_tower())
    with torch.no_grad():
        feats = torch.cat([tower.pooled(x[i:i + 256]) for i in range(0, len(x), 256)])
    proj = tower.t("visual_projection.weight")
    head = torch.nn.Linear(PROJ, N_LABELS)
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=g) * PROJ ** -0.5)
        head.bias.zero_()
    opt = torch.optim.AdamW([proj] + list(head.parameters()), lr=LR, weight_decay=0.01)
    t0 = time.time()
    for step in range(STEPS):
        logits = head(F.linear(feats, proj))
        losses = [F.binary_cross_entropy_with_logits(lg, t) for lg, t in zip(logits.split(GROUPS, 1), y.split(GROUPS, 1))]
        opt.zero_grad()
        sum(losses).backward()
        opt.step()
        if step % 500 == 0 or step == STEPS - 1:
            with torch.no_grad():
                acc = [y.split(GROUPS, 1)[k].gather(1, logits.split(GROUPS, 1)[k].argmax(1)[:, None]).mean().item()
                       for k in (0, 1)]
            print(f"step {step}: loss {sum(losses).item():.4f}, training-set accuracy colour {acc[0]:.2f} "
                  f"shape {acc[1]:.2f} ({time.time() - t0:.0f} s)", file=sys.stderr)
    return {n.replace("/", "."): w.detach().numpy().copy() for n, w in tower.p.items()}, tower


def ridge_probe(xtr, ytr, xte, yte_sets, names, lam=1.0):
    """Held-out accuracy of argmax(ridge scores) and the majority rate."""
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-6
    a, b = (xtr - mu) / sd, (xte - mu) / sd
    a1, b1 = np.hstack([a, np.ones((len(a), 1))]), np.hstack([b, np.ones((len(b), 1))])
    w = np.linalg.solve(a1.T @ a1 + lam * np.eye(a1.shape[1]), a1.T @ ytr)
    pred = (b1 @ w).argmax(1)
    acc = np.mean([names[p] in s for p, s in zip(pred, yte_sets)])
    counts = {n: sum(n in s for s in yte_sets) for n in names}
    return acc, max(counts.values()) / len(yte_sets)


def check(clipcap, fixture, tower):
    with tempfile.TemporaryDirectory() as d:
        recs = synth(clipcap, os.path.join(d, "syn"), PROBE_SEED, PROBE_COUNT, "coco,karpathy")
        run = dict(check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run([clipcap, "shard", "--format", "karpathy", "--input",
                        os.path.join(d, "syn", "karpathy", "dataset_coco.json"), "--images-root",
                        os.path.join(d, "syn", "coco"), "--gpt2", os.path.join(HERE, "..", "fixtures", "gpt2"),
                        "--shards", "1", "--out", os.path.join(d, "man")], **run)
        subprocess.run([clipcap, "extract", "--manifest", os.path.join(d, "man"), "--clip", fixture,
                        "--store", os.path.join(d, "store")], **run)
        npy = os.path.join(d, "emb.npy")
        subprocess.run([clipcap, "store", "dump", "--store", os.path.join(d, "store"), "--format", "npy",
                        "--out", npy], **run)
        emb = np.load(npy)
        keys = open(os.path.join(d, "emb.keys.txt")).read().split()
        by_id = {str(r["coco_id"]): r for r in recs}
        rows = [by_id[k] for k in keys]
        with torch.no_grad():
            ref = tower(load_images(os.path.join(d, "syn"), rows)).numpy()
    diff = np.abs(ref - emb).max() / np.abs(ref).max()
    held = np.array([r["karpathy_split"] in ("val", "test") for r in rows])
    print(f"check: {len(rows)} images embedded by clipcap extract; largest |torch - clipcap| "
          f"{diff:.2e} of the largest |embedding|", file=sys.stderr)
    for field, names in (("color", COLOURS), ("shape", SHAPES)):
        ytr = np.array([[n in {o[field] for o in r["objects"]} for n in names] for r in rows], np.float64)
        sets = [{o[field] for o in r["objects"]} for r in rows]
        acc, major = ridge_probe(emb[~held], ytr[~held], emb[held], [s for s, h in zip(sets, held) if h], names)
        print(f"check: ridge probe on clipcap's embeddings, {int(held.sum())} held-out images: "
              f"{field} {acc:.2f} (majority {major:.2f})", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clipcap", default=os.path.join(HERE, "..", "..", "build", "clipcap"))
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args()
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        recs = synth(args.clipcap, d, TRAIN_SEED, TRAIN_COUNT, "coco")
        recs = [r for r in recs if min(r["width"], r["height"]) >= 16]
        x = load_images(d, recs)
    y = torch.from_numpy(np.stack([labels(r) for r in recs]))
    print(f"{len(recs)} training images, {N_LABELS} labels", file=sys.stderr)
    params, tower = train(x, y)
    G.write_clip_dir(args.out, VC, PROJ, params, {})
    check(args.clipcap, args.out, tower)


if __name__ == "__main__":
    main()
