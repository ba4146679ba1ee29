#!/usr/bin/python3
"""The reference side of bench_preprocess.sh: openai/CLIP's _transform
(Pillow + torchvision) on the same in-memory files, images/s.
usage: bench_preprocess_ref.py --size S --threads T --passes P FILE...
       bench_preprocess_ref.py --make DIR   (writes the synthetic bench images)
Threads: T worker processes (what a DataLoader with num_workers=T does),
each with torch.set_num_threads(1), fed image indices in small chunks.
Prints images per wall second and images per CPU second (1 thread only;
for T > 1 the second number is wall-based per worker)."""
import argparse
import io
import os
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor

MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


def transform(size):
    return Compose([Resize(size, interpolation=InterpolationMode.BICUBIC), CenterCrop(size),
                    lambda im: im.convert("RGB"), ToTensor(), Normalize(MEAN, STD)])


_STATE = {}


def init_worker(blobs, size):
    torch.set_num_threads(1)
    _STATE["blobs"], _STATE["size"], _STATE["t"] = blobs, size, transform(size)


def work_one(job):
    blobs = _STATE["blobs"]
    x = _STATE["t"](Image.open(io.BytesIO(blobs[job % len(blobs)])))
    assert x.shape == (3, _STATE["size"], _STATE["size"])
    return 1


def make(d):
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:480, 0:640].astype(np.float64)
    def img(seed, ch=3):
        planes = [128 + 90 * np.sin(x / (30.0 + 7 * c + seed) + y / (45.0 + 5 * c)) + rng.normal(0, 12, x.shape)
                  for c in range(ch)]
        return np.clip(np.stack(planes, -1), 0, 255).astype(np.uint8)
    Image.fromarray(img(1)).save(os.path.join(d, "bench_rgb.png"))
    a = img(2, 4)
    a[..., 3] = np.clip(a[..., 3] + 100, 0, 255)
    Image.fromarray(a, "RGBA").save(os.path.join(d, "bench_rgba.png"))
    Image.fromarray(img(3)).save(os.path.join(d, "bench_lossy.webp"), quality=85)
    Image.fromarray(img(4)).resize((1024, 768)).save(os.path.join(d, "bench_progressive.jpg"), quality=90,
                                                     progressive=True)
    Image.fromarray(img(5)).convert("L").save(os.path.join(d, "bench_grey.jpg"), quality=90)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--passes", type=int, default=10)
    ap.add_argument("--make")
    ap.add_argument("files", nargs="*")
    a = ap.parse_args()
    if a.make:
        make(a.make)
        return
    blobs = [open(f, "rb").read() for f in a.files]
    jobs = range(len(blobs) * a.passes)
    if a.threads == 1:
        init_worker(blobs, a.size)
        t0, c0 = time.perf_counter(), time.process_time()
        n = sum(map(work_one, jobs))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    else:
        with ProcessPoolExecutor(a.threads, initializer=init_worker, initargs=(blobs, a.size)) as ex:
            list(ex.map(work_one, range(a.threads * 2)))  # start the workers before timing
            t0 = time.perf_counter()
            n = sum(ex.map(work_one, jobs, chunksize=4))
            wall = time.perf_counter() - t0
        cpu = wall * a.threads  # the workers' CPU time is not visible here; report the wall-based figure
    print("%.2f %.2f" % (n / wall, n / cpu))


if __name__ == "__main__":
    main()
