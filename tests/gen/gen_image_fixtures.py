#!/usr/bin/python3
"""Image fixtures and their reference CLIP preprocessing.

Writes tests/fixtures/image/:
  src/NAME.EXT       small images in every supported format and mode
  expected/NAME.rgb  the 8-bit RGB centre crop (S*S*3, HWC) that openai/CLIP's
                     _transform produces before ToTensor: Resize(S, BICUBIC),
                     CenterCrop(S), convert("RGB") -- run with Pillow 9.4 and
                     torchvision 0.14, the reference.
  expected/NAME.f32  for a few fixtures, the normalised float32 [3,S,S] tensor
                     (ToTensor + Normalize) as raw little-endian floats
  bad/NAME.EXT       files that must fail, with the error class expected
  manifest.txt       one line per fixture:
                       ok NAME src/FILE S MODE W H FRAMES
                       bad NAME bad/FILE ERRCLASS
Run: /usr/bin/python3 tests/gen/gen_image_fixtures.py  (from the repository root)
Synthetic content only (seeded), so the fixtures do not depend on anything
outside the project. PNG variants Pillow cannot write (16-bit RGB, 16-bit
LA/RGBA, 2/4-bit grey, interlaced) come from the small PNG writer below.
"""
import io
import os
import shutil
import struct
import sys
import zlib

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "image")
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


def reference_rgb(path, size):
    """openai/CLIP's _transform up to ToTensor, i.e. the 8-bit RGB crop."""
    t = Compose([Resize(size, interpolation=InterpolationMode.BICUBIC), CenterCrop(size),
                 lambda im: im.convert("RGB")])
    with Image.open(path) as im:
        out = t(im)
    a = np.asarray(out, dtype=np.uint8)
    assert a.shape == (size, size, 3), a.shape
    return a


def reference_tensor(path, size):
    t = Compose([Resize(size, interpolation=InterpolationMode.BICUBIC), CenterCrop(size),
                 lambda im: im.convert("RGB"), ToTensor(), Normalize(MEAN, STD)])
    with Image.open(path) as im:
        return t(im).numpy().astype("<f4")


def content(w, h, seed, channels=3):
    """Smooth gradients + sharp edges + noise: every resampling tap matters."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    planes = []
    for c in range(channels):
        v = 128 + 90 * np.sin(x / (2.5 + c) + y / (4.0 + 1.5 * c) + c)
        v += 60 * (((x // (5 + c)) + (y // (7 + c))) % 2 - 0.5)
        v += rng.normal(0, 18, size=(h, w))
        planes.append(v)
    a = np.clip(np.stack(planes, -1), 0, 255).round().astype(np.uint8)
    return a if channels > 1 else a[..., 0]


def alpha_plane(w, h, seed):
    """Alpha with fully transparent, fully opaque and partial regions."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    a = (255 * (x / max(w - 1, 1))).astype(np.int64)
    a[(x + y) % 11 == 0] = 0
    a[: h // 4, :] = 255
    a[h // 4: h // 3, :] = 0
    a = a + rng.integers(-20, 20, size=(h, w))
    return np.clip(a, 0, 255).astype(np.uint8)


# ---- a minimal PNG writer for what Pillow cannot write -------------------

def _chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xffffffff)


def _pack_rows(a, depth, channels):
    """a: HxW(xC) integer array -> list of raw scanlines (no filter byte)."""
    h = a.shape[0]
    rows = []
    for r in range(h):
        row = a[r].reshape(-1).astype(np.int64)
        if depth == 16:
            rows.append(row.astype(">u2").tobytes())
        elif depth == 8:
            rows.append(row.astype(np.uint8).tobytes())
        else:
            per = 8 // depth
            n = len(row)
            padded = np.zeros(((n + per - 1) // per) * per, np.int64)
            padded[:n] = row
            packed = np.zeros(len(padded) // per, np.int64)
            for i in range(per):
                packed |= padded[i::per] << (8 - depth * (i + 1))
            rows.append(packed.astype(np.uint8).tobytes())
    return rows


def png_write(path, a, depth, ctype, palette=None, trns=None, interlace=False):
    h, w = a.shape[:2]
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[ctype]
    raw = b""
    if interlace:
        passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
        for x0, y0, dx, dy in passes:
            sub = a[y0::dy, x0::dx]
            if sub.shape[0] == 0 or sub.shape[1] == 0:
                continue
            raw += b"".join(b"\0" + r for r in _pack_rows(sub, depth, channels))
    else:
        raw = b"".join(b"\0" + r for r in _pack_rows(a, depth, channels))
    out = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 1 if interlace else 0))
    if palette is not None:
        out += _chunk(b"PLTE", bytes(np.asarray(palette, np.uint8).reshape(-1)))
    if trns is not None:
        out += _chunk(b"tRNS", trns)
    out += _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(out)


# ---- the fixture set ------------------------------------------------------

def make_sources(src):
    """Yields (name, filename, S)."""
    def save(name, im, ext, S, **kw):
        fn = f"{name}.{ext}"
        im.save(os.path.join(src, fn), **kw)
        return (name, fn, S)

    rgb = lambda w, h, s: Image.fromarray(content(w, h, s))
    out = []
    # JPEG
    out.append(save("jpeg_baseline_down", rgb(80, 61, 1), "jpg", 32, quality=90))
    out.append(save("jpeg_444_odd", rgb(47, 33, 2), "jpg", 32, quality=95, subsampling=0))
    out.append(save("jpeg_422_tall", rgb(37, 120, 3), "jpg", 32, quality=85, subsampling=1))
    out.append(save("jpeg_progressive", rgb(90, 70, 4), "jpg", 48, quality=88, progressive=True))
    out.append(save("jpeg_grey_up", Image.fromarray(content(21, 17, 5, 1)), "jpg", 48, quality=90))
    out.append(save("jpeg_cmyk", rgb(70, 52, 6).convert("CMYK"), "jpg", 32, quality=92))
    out.append(save("jpeg_exact", rgb(32, 32, 7), "jpg", 32, quality=90))
    out.append(save("jpeg_short_is_s", rgb(32, 57, 8), "jpg", 32, quality=90))
    ex = Image.Exif()
    ex[0x0112] = 6  # orientation "rotate 90": CLIP's pipeline ignores it
    out.append(save("jpeg_exif_rotated", rgb(60, 40, 9), "jpg", 32, quality=90, exif=ex.tobytes()))
    out.append(save("jpeg_photo_224", rgb(400, 300, 10), "jpg", 224, quality=90))
    # Large enough for fast mode's reduced-DCT decode (1/4 scale: 250x230 >= 224);
    # smooth content keeps the file small.
    yy, xx = np.mgrid[0:920, 0:1000].astype(np.float64)
    smooth = np.stack([128 + 100 * np.sin(xx / (40.0 + 9 * c) + yy / (55.0 + 7 * c)) + 30 * ((xx // 97 + yy // 89) % 2)
                       for c in range(3)], -1)
    out.append(save("jpeg_large_fast", Image.fromarray(np.clip(smooth, 0, 255).astype(np.uint8)), "jpg", 224,
                    quality=85))
    # CMYK without the Adobe marker: Pillow still reads it as inverted CMYK.
    buf = io.BytesIO()
    rgb(50, 44, 11).convert("CMYK").save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    i = data.find(b"\xff\xee")
    assert i > 0
    seglen = struct.unpack(">H", data[i + 2:i + 4])[0]
    with open(os.path.join(src, "jpeg_cmyk_noadobe.jpg"), "wb") as f:
        f.write(data[:i] + data[i + 2 + seglen:])
    out.append(("jpeg_cmyk_noadobe", "jpeg_cmyk_noadobe.jpg", 32))
    # PNG that Pillow writes
    out.append(save("png_rgb_wide", rgb(150, 31, 12), "png", 32))
    out.append(save("png_grey", Image.fromarray(content(45, 39, 13, 1)), "png", 32))
    la = np.stack([content(44, 36, 14, 1), alpha_plane(44, 36, 14)], -1)
    out.append(save("png_la", Image.fromarray(la, "LA"), "png", 32))
    rgba = np.dstack([content(64, 50, 15), alpha_plane(64, 50, 15)])
    out.append(save("png_rgba_down", Image.fromarray(rgba, "RGBA"), "png", 32))
    rgba_up = np.dstack([content(19, 25, 16), alpha_plane(19, 25, 16)])
    out.append(save("png_rgba_up", Image.fromarray(rgba_up, "RGBA"), "png", 48))
    out.append(save("png_rgba_224", Image.fromarray(np.dstack([content(180, 250, 17), alpha_plane(180, 250, 17)]),
                                                    "RGBA"), "png", 224))
    pal = rgb(70, 45, 18).quantize(colors=200)
    out.append(save("png_palette", pal, "png", 32))
    pal_up = rgb(23, 29, 19).quantize(colors=16)
    out.append(save("png_palette4_up", pal_up, "png", 48, bits=4))
    pt = rgb(58, 40, 20).quantize(colors=64)
    pt.info["transparency"] = bytes([0, 128] + [255] * 10)
    out.append(save("png_palette_trns", pt, "png", 32, transparency=bytes([0, 128] + [255] * 10)))
    out.append(save("png_bilevel", Image.fromarray(content(41, 37, 21, 1)).convert("1"), "png", 32))
    # PNG from the small writer
    def w(name, a, depth, ctype, S, **kw):
        fn = f"{name}.png"
        png_write(os.path.join(src, fn), a, depth, ctype, **kw)
        out.append((name, fn, S))
    g16 = (content(40, 30, 22, 1).astype(np.int64) * 3).astype(np.int64)  # 0..765: Pillow clips at 255
    w("png_grey16", g16, 16, 0, 32)
    w("png_grey16_full", content(36, 44, 23, 1).astype(np.int64) * 257, 16, 0, 32)
    w("png_rgb16", content(50, 40, 24).astype(np.int64) * 257 + 77, 16, 2, 32)
    w("png_rgba16", np.dstack([content(44, 40, 25), alpha_plane(44, 40, 25)]).astype(np.int64) * 257 + 3, 16, 6, 32)
    w("png_la16", np.dstack([content(40, 44, 26, 1), alpha_plane(40, 44, 26)]).astype(np.int64) * 257, 16, 4, 32)
    w("png_grey4", content(39, 27, 27, 1) >> 4, 4, 0, 32)
    w("png_grey2", content(35, 35, 28, 1) >> 6, 2, 0, 32)
    w("png_interlaced_rgb", content(53, 41, 29), 8, 2, 32, interlace=True)
    w("png_interlaced_rgba", np.dstack([content(37, 45, 30), alpha_plane(37, 45, 30)]), 8, 6, 32, interlace=True)
    w("png_rgb_trns", content(40, 40, 31), 8, 2, 32, trns=struct.pack(">HHH", 10, 20, 30))
    w("png_grey_trns", content(40, 36, 32, 1), 8, 0, 32, trns=struct.pack(">H", 100))
    # palette whose pixels index past the PLTE entries (Pillow's grey ramp fills them)
    idx = (content(30, 30, 33, 1) // 16).astype(np.int64)
    w("png_palette_short", idx, 8, 3, 32, palette=np.array([[200, 10, 10], [10, 200, 10], [10, 10, 200], [90, 90, 0]]))
    # WebP
    out.append(save("webp_lossy", rgb(80, 60, 34), "webp", 32, quality=80))
    out.append(save("webp_lossless", rgb(45, 70, 35), "webp", 32, lossless=True))
    out.append(save("webp_lossy_alpha", Image.fromarray(np.dstack([content(60, 48, 36), alpha_plane(60, 48, 36)]),
                                                        "RGBA"), "webp", 32, quality=85))
    out.append(save("webp_lossless_alpha", Image.fromarray(np.dstack([content(33, 41, 37), alpha_plane(33, 41, 37)]),
                                                           "RGBA"), "webp", 48, lossless=True))
    out.append(save("webp_lossy_224", rgb(300, 260, 38), "webp", 224, quality=85))
    frames = [rgb(64, 48, 39 + i) for i in range(3)]
    fn = "webp_animated.webp"
    frames[0].save(os.path.join(src, fn), save_all=True, append_images=frames[1:], duration=100, loop=0, quality=80)
    out.append(("webp_animated", fn, 32))
    frames = [Image.fromarray(np.dstack([content(40, 30, 42 + i), alpha_plane(40, 30, 42 + i)]), "RGBA")
              for i in range(2)]
    fn = "webp_animated_alpha.webp"
    frames[0].save(os.path.join(src, fn), save_all=True, append_images=frames[1:], duration=80, lossless=True)
    out.append(("webp_animated_alpha", fn, 32))
    # wrong extension: a PNG named .jpg and a JPEG named .webp (magic bytes decide)
    rgb(46, 38, 44).save(os.path.join(src, "png_named_jpg.jpg"), "PNG")
    out.append(("png_named_jpg", "png_named_jpg.jpg", 32))
    rgb(38, 46, 45).save(os.path.join(src, "jpeg_named_webp.webp"), "JPEG", quality=90)
    out.append(("jpeg_named_webp", "jpeg_named_webp.webp", 32))
    # extreme aspect: 4 x 90 -> 32 x 720 (upscale) then crop
    out.append(save("png_extreme_aspect", rgb(4, 90, 46), "png", 32))
    return out


def make_bad(bad, src):
    def put(fn, data):
        with open(os.path.join(bad, fn), "wb") as f:
            f.write(data)

    def read(fn):
        with open(os.path.join(src, fn), "rb") as f:
            return f.read()

    out = []
    for fn, name in [("jpeg_baseline_down.jpg", "truncated.jpg"), ("jpeg_progressive.jpg", "truncated_progressive.jpg"),
                     ("png_rgb_wide.png", "truncated.png"), ("webp_lossy.webp", "truncated.webp"),
                     ("webp_animated.webp", "truncated_animated.webp")]:
        d = read(fn)
        put(name, d[: len(d) * 2 // 3])
        out.append((name, "FORMAT"))
    put("empty.jpg", b"")
    out.append(("empty.jpg", "FORMAT"))
    put("garbage.png", bytes(np.random.default_rng(50).integers(0, 256, 777, dtype=np.uint8)))
    out.append(("garbage.png", "FORMAT"))
    put("header_only.png", read("png_grey.png")[:8])
    out.append(("header_only.png", "FORMAT"))
    # corrupt entropy-coded data in the middle of a JPEG: libjpeg may still
    # decode it (like Pillow); only crashes matter, so it is a fuzz seed, not
    # a fixture. A PNG IDAT with a broken zlib stream must fail.
    d = bytearray(read("png_rgb_wide.png"))
    i = d.find(b"IDAT")
    for k in range(i + 10, i + 30):
        d[k] ^= 0x5a
    put("corrupt_idat.png", bytes(d))
    out.append(("corrupt_idat.png", "FORMAT"))
    # decompression bombs: tiny files declaring huge canvases
    png = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)) + \
        _chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + _chunk(b"IEND", b"")
    put("bomb.png", png)
    out.append(("bomb.png", "LIMIT"))
    j = bytearray(read("jpeg_exact.jpg"))
    k = j.find(b"\xff\xc0")
    j[k + 5:k + 9] = struct.pack(">HH", 65000, 65000)
    put("bomb.jpg", bytes(j))
    out.append(("bomb.jpg", "LIMIT"))
    # a lossless WebP whose VP8L header is patched to claim 16384 x 16384
    Image.fromarray(content(16, 16, 51)).save(buf := io.BytesIO(), "WEBP", lossless=True)
    riff = bytearray(buf.getvalue())
    assert riff[12:16] == b"VP8L" and riff[20] == 0x2f
    bits = int.from_bytes(riff[21:25], "little")
    bits = (bits & ~((1 << 28) - 1)) | (16383 << 14) | 16383
    riff[21:25] = bits.to_bytes(4, "little")
    put("bomb.webp", bytes(riff))
    out.append(("bomb.webp", "LIMIT"))
    # 1 x 600000 grey: at S = 4096 the resized long side would not fit an
    # int (Pillow would try to allocate it); not in the manifest, which runs
    # at S = 32, but read by test_image's own test.
    png_write(os.path.join(bad, "aspect_1x600000.png"), np.zeros((600000, 1), np.int64), 8, 0)
    # a GIF, named .jpg: a clear "unsupported", not a crash
    Image.fromarray(content(20, 20, 52)).convert("P").save(buf := io.BytesIO(), "GIF")
    put("gif_named.jpg", buf.getvalue())
    out.append(("gif_named.jpg", "UNSUPPORTED"))
    return out


def main():
    if os.path.isdir(ROOT):
        shutil.rmtree(ROOT)
    src, exp, bad = (os.path.join(ROOT, d) for d in ("src", "expected", "bad"))
    for d in (src, exp, bad):
        os.makedirs(d)
    lines = []
    tensors = {"jpeg_baseline_down", "png_rgba_down", "webp_lossy"}
    for name, fn, S in make_sources(src):
        path = os.path.join(src, fn)
        a = reference_rgb(path, S)
        with open(os.path.join(exp, name + ".rgb"), "wb") as f:
            f.write(a.tobytes())
        if name in tensors:
            t = reference_tensor(path, S)
            # The tensor is exactly ToTensor+Normalize of the crop stored above.
            back = torch.from_numpy(a.copy()).permute(2, 0, 1).float().div(255)
            back = Normalize(MEAN, STD)(back).numpy()
            assert np.array_equal(back, t)
            with open(os.path.join(exp, name + ".f32"), "wb") as f:
                f.write(t.tobytes())
        with Image.open(path) as im:
            mode, (w, h), frames = im.mode, im.size, getattr(im, "n_frames", 1)
        lines.append(f"ok {name} src/{fn} {S} {mode} {w} {h} {frames}")
    for fn, cls in make_bad(bad, src):
        lines.append(f"bad {fn.replace('.', '_')} bad/{fn} {cls}")
    with open(os.path.join(ROOT, "manifest.txt"), "w") as f:
        f.write("# generated by tests/gen/gen_image_fixtures.py (Pillow %s, torchvision %s)\n"
                % (Image.__version__, __import__("torchvision").__version__))
        f.write("\n".join(lines) + "\n")
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(ROOT) for f in fs)
    print(f"{len(lines)} fixtures, {total} bytes under {ROOT}")


if __name__ == "__main__":
    sys.exit(main())
