#!/usr/bin/python3
"""Writes the fixtures of the io unit tests into tests/fixtures/io/.

Independent references for common/io: torch.save (the .pt files), a small
safetensors writer written here from the format description (struct + json),
numpy.save, Python's tarfile, the zstd command line tool, Python's json
module for syntax-error positions. Expected tensor values go to
expected.json as float32 values (f16/bf16 widen exactly to float32).

Run: /usr/bin/python3 tests/gen/gen_io_fixtures.py [OUTDIR]
"""
import collections
import io
import json
import os
import struct
import subprocess
import sys
import tarfile

import numpy as np
import torch

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "fixtures", "io")
os.makedirs(OUT, exist_ok=True)
torch.manual_seed(1234)
np.random.seed(1234)


def path(name):
    return os.path.join(OUT, name)


def values(t):
    return [float(x) for x in t.detach().to(torch.float32).reshape(-1).tolist()]


def describe(t):
    return {"shape": list(t.shape), "values": values(t)}


expected = {}

# ---- .pt: torch.save of a state dict --------------------------------------
base = torch.arange(20, dtype=torch.float32) * 0.5
w = torch.randn(4, 3)
sd = collections.OrderedDict()
sd["clip_project.model.0.weight"] = w
sd["clip_project.model.0.bias"] = torch.randn(4)
sd["half"] = torch.randn(2, 3).to(torch.float16)
sd["bf16"] = torch.randn(5).to(torch.bfloat16)
sd["offset_view"] = base[5:11].view(2, 3)  # storage offset 5 into a 20-element storage
sd["tied"] = w  # shares the storage of the first tensor (memo BINGET)
sd["param"] = torch.nn.Parameter(torch.randn(3))  # _rebuild_parameter
sd["gpt.transformer.h.0.attn.bias"] = torch.tril(torch.ones(4, 4, dtype=torch.uint8)).view(1, 1, 4, 4)
sd["gpt.transformer.h.0.attn.masked_bias"] = torch.tensor(-1e4)  # 0-dim
sd["mask_bool"] = torch.tensor([True, False, True])
sd["step"] = torch.tensor([7, -3], dtype=torch.int64)
sd["empty"] = torch.zeros(0, 3)
torch.save(sd, path("state_dict.pt"))
expected["state_dict.pt"] = {k: describe(v) for k, v in sd.items()}
# the same dict with pickle protocol 4 (FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL)
torch.save(sd, path("state_dict_p4.pt"), pickle_protocol=4)

# a module's own state_dict(): OrderedDict + BUILD of _metadata
torch.manual_seed(5)
mod = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2))
msd = mod.state_dict()
torch.save(msd, path("module.pt"))
expected["module.pt"] = {k: describe(v) for k, v in msd.items()}

torch.save({"t": torch.randn(3, 4).t()}, path("noncontig.pt"))
torch.save({"model": msd, "epoch": 3}, path("wrapped.pt"))
torch.save(msd, path("legacy.pt"), _use_new_zipfile_serialization=False)  # storage keys vary run to run
torch.save([torch.zeros(2)], path("list.pt"))


def pt_with_pickle(name, pkl):
    """A torch.save-shaped zip whose data.pkl is the given bytes."""
    import zipfile
    with zipfile.ZipFile(path(name), "w", compression=zipfile.ZIP_STORED) as z:
        for entry, data in (("archive/data.pkl", pkl), ("archive/version", b"3\n")):
            z.writestr(zipfile.ZipInfo(entry, date_time=(2020, 1, 1, 0, 0, 0)), data)


# state_dict.pt re-zipped by Python's zipfile with zip64 local headers and
# no 64-byte alignment: the reader must rely on the directory, not torch's layout
import zipfile
with zipfile.ZipFile(path("state_dict.pt")) as zin, zipfile.ZipFile(path("state_dict_zip64.pt"), "w", zipfile.ZIP_STORED) as zout:
    for info in zin.infolist():
        with zout.open(zipfile.ZipInfo(info.filename.replace("state_dict/", "other_name/"), date_time=(2020, 1, 1, 0, 0, 0)), "w", force_zip64=True) as dst:
            dst.write(zin.read(info))

pt_with_pickle("bad_opcode.pt", b"\x80\x02}q\x00\xff.")  # 0xff at byte 5
pt_with_pickle("evil.pt", b"\x80\x02cposix\nsystem\nq\x00X\x04\x00\x00\x00echo\x85R.")

# ---- safetensors by an independent writer ---------------------------------


def st_bytes(tensors, metadata=None, header_override=None, pad=True):
    """tensors: list of (name, dtype, shape, raw bytes)."""
    header, blob, off = {}, b"", 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dt, shape, raw in tensors:
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blob += raw
        off += len(raw)
    if header_override:
        header_override(header)
    text = json.dumps(header).encode()
    if pad:
        text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + blob


def bf16_raw(x):
    """float32 -> bfloat16 by round-to-nearest-even, via torch (the reference)."""
    return torch.tensor(x, dtype=torch.float32).to(torch.bfloat16).view(torch.int16).numpy().astype("<i2").tobytes()


a = np.random.randn(2, 3).astype(np.float32)
h = np.random.randn(4).astype(np.float16)
b_src = np.random.randn(3, 2).astype(np.float32)
d = np.random.randn(2).astype(np.float64)
st_tensors = [
    ("a.f32", "F32", [2, 3], a.astype("<f4").tobytes()),
    ("b.f16", "F16", [4], h.astype("<f2").tobytes()),
    ("c.bf16", "BF16", [3, 2], bf16_raw(b_src)),
    ("d.f64", "F64", [2], d.astype("<f8").tobytes()),
    ("e.i64", "I64", [3], np.array([1, -2, 3], dtype="<i8").tobytes()),
    ("f.scalar", "F32", [], np.array([2.5], dtype="<f4").tobytes()),
]
with open(path("ref.safetensors"), "wb") as f:
    f.write(st_bytes(st_tensors, metadata={"format": "pt", "note": "written by gen_io_fixtures.py"}))
bf = torch.tensor(b_src).to(torch.bfloat16).to(torch.float32)
expected["ref.safetensors"] = {
    "a.f32": {"shape": [2, 3], "values": [float(x) for x in a.reshape(-1)]},
    "b.f16": {"shape": [4], "values": [float(x) for x in h.astype(np.float32)]},
    "c.bf16": {"shape": [3, 2], "values": values(bf)},
    "d.f64": {"shape": [2], "values": [float(np.float32(x)) for x in d]},
    "e.i64": {"shape": [3], "values": [1.0, -2.0, 3.0]},
    "f.scalar": {"shape": [], "values": [2.5]},
}

# every float16 bit pattern (subnormals, inf, NaN payloads) and numpy's float32 widening
all_h = np.arange(65536, dtype=np.uint16)
with open(path("f16_all.safetensors"), "wb") as f:
    f.write(st_bytes([("h", "F16", [65536], all_h.astype("<u2").tobytes())]))
np.save(path("f16_all.npy"), all_h.view(np.float16).astype(np.float32))

good = st_tensors[:2]
corrupt = {}
full = st_bytes(good)
corrupt["bad_header_len.safetensors"] = struct.pack("<Q", len(full) + 100) + full[8:]
corrupt["truncated.safetensors"] = full[:-5]
corrupt["too_short.safetensors"] = b"\x01\x00\x00"
corrupt["bad_json.safetensors"] = (lambda t: struct.pack("<Q", len(t)) + t)(b'{"a.f32": {"dtype": "F32",, }}')
corrupt["not_object.safetensors"] = (lambda t: struct.pack("<Q", len(t)) + t)(b"[1, 2, 3]")


def edit(fn):
    return st_bytes(good, header_override=fn)


corrupt["offsets_outside.safetensors"] = edit(lambda hd: hd["b.f16"].update(data_offsets=[24, 24 + 8 + 64]))
corrupt["overlap.safetensors"] = st_bytes(
    [("x", "F32", [4], b"\0" * 16)],
    header_override=lambda hd: hd.update(y={"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}))
corrupt["unknown_dtype.safetensors"] = edit(lambda hd: hd["a.f32"].update(dtype="F33"))
corrupt["shape_mismatch.safetensors"] = edit(lambda hd: hd["a.f32"].update(shape=[3, 3]))
corrupt["negative_dim.safetensors"] = edit(lambda hd: hd["a.f32"].update(shape=[-2, -3]))
corrupt["backwards.safetensors"] = edit(lambda hd: hd["b.f16"].update(data_offsets=[32, 24]))
corrupt["missing_shape.safetensors"] = edit(lambda hd: hd["a.f32"].pop("shape"))
corrupt["bad_metadata.safetensors"] = st_bytes(good, metadata={"k": 3})
os.makedirs(path("corrupt"), exist_ok=True)
for name, data in corrupt.items():
    with open(os.path.join(path("corrupt"), name), "wb") as f:
        f.write(data)

# ---- npy --------------------------------------------------------------------
arr = np.random.randn(2, 3, 4).astype(np.float32)
np.save(path("arr.npy"), arr)
np.save(path("vec.npy"), np.arange(5, dtype=np.float32))
np.save(path("f64.npy"), np.arange(3, dtype=np.float64))
expected["arr.npy"] = {"shape": [2, 3, 4], "values": [float(x) for x in arr.reshape(-1)]}

# ---- tar (webdataset-like shard) -------------------------------------------
long_name = "sub/" + "long_directory_name_" * 4 + "/000002.caption_with_a_long_name.txt"
assert len(long_name) > 100
members = [("000000.jpg", b"\xff\xd8fake jpeg bytes\xff\xd9"), ("000000.txt", b"a cat on a mat"),
           ("000001.json", b'{"caption": "two dogs"}'), (long_name, b"x" * 700), ("empty.txt", b"")]
listing = {}
for fmt, fname in ((tarfile.PAX_FORMAT, "shard_pax.tar"), (tarfile.GNU_FORMAT, "shard_gnu.tar"), (tarfile.USTAR_FORMAT, "shard_ustar.tar")):
    with tarfile.open(path(fname), "w", format=fmt) as tf:
        di = tarfile.TarInfo("subdir")
        di.type = tarfile.DIRTYPE
        tf.addfile(di)
        for n, data in members:
            if fmt == tarfile.USTAR_FORMAT and len(n) > 100:
                n = "sub/" + "d" * 120 + "/x.txt"  # ustar: prefix + name split
            ti = tarfile.TarInfo(n)
            ti.size = len(data)
            ti.mtime = 1700000000
            tf.addfile(ti, io.BytesIO(data))
    with tarfile.open(path(fname)) as tf:
        listing[fname] = [{"name": m.name, "offset": m.offset_data, "size": m.size, "type": m.type.decode() or "0"} for m in tf.getmembers()]
raw = open(path("shard_pax.tar"), "rb").read()
last = listing["shard_pax.tar"][-2]  # the 700-byte member
with open(path("truncated.tar"), "wb") as f:
    f.write(raw[:last["offset"] + 300])
bad = bytearray(raw)
bad[listing["shard_pax.tar"][1]["offset"] - 512 + 101] ^= 0x01  # corrupt a header byte (mode)
with open(path("badsum.tar"), "wb") as f:
    f.write(bytes(bad))
expected["tar"] = listing

# ---- json syntax error ------------------------------------------------------
bad_json = '{\n  "a": 1,\n  "b": [1, 2,, 3]\n}\n'
with open(path("bad.json"), "w") as f:
    f.write(bad_json)
try:
    json.loads(bad_json)
except json.JSONDecodeError as ex:
    expected["bad.json"] = {"line": ex.lineno, "col": ex.colno}

# ---- zstd by the command line tool -----------------------------------------
lines = [f"line {i}: " + "abc" * (i % 17) for i in range(1000)] + ["", "last line without newline"]
text = "\n".join(lines)
with open(path("lines.txt"), "w") as f:
    f.write(text)
subprocess.run(["zstd", "-q", "-f", "-19", path("lines.txt"), "-o", path("lines.txt.zst")], check=True)
two = subprocess.run(["zstd", "-q", "-c"], input=b"frame one\n", capture_output=True, check=True).stdout + \
    subprocess.run(["zstd", "-q", "-c"], input=b"frame two\n", capture_output=True, check=True).stdout
with open(path("two_frames.zst"), "wb") as f:
    f.write(two)
zst = open(path("lines.txt.zst"), "rb").read()
with open(path("lines_truncated.zst"), "wb") as f:
    f.write(zst[:len(zst) // 2])
expected["lines.txt.zst"] = {"count": len(lines)}

with open(path("expected.json"), "w") as f:
    json.dump(expected, f, indent=0)
print("wrote", OUT)
