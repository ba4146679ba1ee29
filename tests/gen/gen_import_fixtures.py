#!/usr/bin/python3
"""The paper's features file in small (tests/fixtures/import/), written the
way parse_coco.py writes oscar_split_ViT-B_32_train.pkl:

  for i, d in enumerate(train_caption.json):       # one row per CAPTION
      d["clip_embedding"] = i
      embeddings.append(clip_model.encode_image(image_of(d)))  # fp16 on CUDA
  pickle.dump({"clip_embedding": torch.cat(embeddings), "captions": captions}, f)

  train_caption.json   [{"image_id", "caption", "id"}], 8 images, 2-3 captions each
  features.pkl         that pickle (plain pickle.dump, protocol 4; the tensor is
                       fp16 [N, 32], rebuilt from torch.storage._load_from_bytes)
  expected.json        per image id: the embedding (its first row, as float) and
                       whether its rows agree; image 7's second row is perturbed
                       (rows that disagree: the import records a failure)
  gpt2_pt/             tests/fixtures/train/gpt2_fullvocab as an older hub snapshot
                       has it: config.json + pytorch_model.bin (torch.save of the
                       same tensors), for train's GPT-2 loading
Run: /usr/bin/python3 tests/gen/gen_import_fixtures.py
"""
import json
import os
import pickle

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "import")
D = 32
COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "pink", "brown"]
SHAPES = ["circle", "square", "triangle", "diamond"]


def st_load(path):
    """A safetensors file's F32/F16 tensors, dtypes kept (u64 header length, JSON, data)."""
    raw = open(path, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        dt = {"F32": "<f4", "F16": "<f2"}[t["dtype"]]
        b, e = t["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(raw[8 + n + b:8 + n + e], dtype=dt).reshape(t["shape"]).copy())
    return out


def gen_gpt2_pt():
    src = os.path.join(OUT, "..", "train", "gpt2_fullvocab")
    dst = os.path.join(OUT, "gpt2_pt")
    os.makedirs(dst, exist_ok=True)
    torch.save(st_load(os.path.join(src, "model.safetensors")), os.path.join(dst, "pytorch_model.bin"))
    with open(os.path.join(src, "config.json")) as f, open(os.path.join(dst, "config.json"), "w") as g:
        g.write(f.read())


def main():
    os.makedirs(OUT, exist_ok=True)
    captions, ann_id = [], 1000
    for k in range(8):
        image_id = 391895 + 17 * k
        c, s = COLOURS[k], SHAPES[k % 4]
        texts = [f"A {c} {s} on a white background.", f"There is a {c} {s}.", f"A picture of a {c} {s}."][: 2 + k % 2]
        for t in texts:
            captions.append({"image_id": image_id, "caption": t, "id": ann_id})
            ann_id += 1
    with open(os.path.join(OUT, "train_caption.json"), "w") as f:
        json.dump(captions, f)
    rows, expected = [], {}
    for i, d in enumerate(captions):
        g = torch.Generator().manual_seed(d["image_id"])
        emb = torch.randn(1, D, generator=g).half()  # the same image encodes the same way
        if d["image_id"] == 391895 + 17 * 7 and str(d["image_id"]) in expected:
            emb = emb + 0.5  # a duplicate that disagrees
            expected[str(d["image_id"])]["agree"] = False
        expected.setdefault(str(d["image_id"]), {"embedding": emb[0].float().tolist(), "agree": True})
        d = dict(d, clip_embedding=i)
        rows.append(emb)
        captions[i] = d
    with open(os.path.join(OUT, "features.pkl"), "wb") as f:
        pickle.dump({"clip_embedding": torch.cat(rows, dim=0), "captions": captions}, f)
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    gen_gpt2_pt()
    print("wrote", os.path.normpath(OUT), len(captions), "captions")


if __name__ == "__main__":
    main()
