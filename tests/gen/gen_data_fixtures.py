#!/usr/bin/python3
"""Writes tests/fixtures/data/: tiny COCO, Karpathy and Conceptual Captions
(TSV + img2dataset files + webdataset tar) inputs, each with one bad record
of every kind the readers must reject, and expected.json: what a reader
following docs/manifest.md must produce (kept keys with their captions in
order, rejects per reason, input record counts, the line:column of the
syntax error). The expectations are written here from the rules, case by
case, independently of the C code.

Run: /usr/bin/python3 tests/gen/gen_data_fixtures.py tests/fixtures/data
"""
import io
import json
import os
import shutil
import sys
import tarfile

out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/data"
shutil.rmtree(out, ignore_errors=True)
os.makedirs(out)
JPEG = b"\xff\xd8\xff\xe0fake-jpeg-bytes\xff\xd9"  # shard never decodes images
WEBP = b"RIFF\x10\x00\x00\x00WEBPfake"


def write(rel, data, mode="wb"):
    p = os.path.join(out, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, mode) as f:
        f.write(data)


expected = {}

# ---------------------------------------------------------------- COCO --
for name in ["a1.jpg", "a2.jpg", "a7.jpg", "a8.jpg", "a10.jpg", "dup.jpg"]:
    write("coco/train2014/" + name, JPEG)
write("coco/train2014/empty6.jpg", b"")
for name in ["b20.jpg", "b21.jpg"]:
    write("coco/val2014/" + name, JPEG)

uni = "Ünïcödé café ☕ 😀 (\"quoted\", back\\slash, tab\there)"
coco_train = {
    "info": {"description": "clipcap reader fixture"},
    "images": [
        {"id": 1, "file_name": "a1.jpg", "width": 1, "height": 1},
        {"id": 2, "file_name": "a2.jpg"},
        {"id": "3", "file_name": "a3.jpg"},          # malformed: id is a string
        {"id": 4},                                    # malformed: no file_name
        {"id": 5, "file_name": "missing5.jpg"},      # missing image
        {"id": 6, "file_name": "empty6.jpg"},        # zero-length image
        {"id": 1, "file_name": "dup.jpg"},           # duplicate key
        {"id": 7, "file_name": "a7.jpg"},            # no captions
        {"id": 8, "file_name": "a8.jpg"},            # only caption malformed
        {"id": 10, "file_name": "a10.jpg"},
    ],
    "annotations": [
        {"id": 100, "image_id": 1, "caption": "A cat on a mat."},
        {"id": 101, "image_id": 1, "caption": "Two dogs."},
        {"id": 102, "image_id": 2, "caption": "A red bus."},
        {"id": 103, "image_id": 2, "caption": ""},              # empty
        {"id": 104, "image_id": 2, "caption": "  \n"},          # blank
        {"id": 105, "image_id": 5, "caption": "lost image"},
        {"id": 106, "image_id": 6, "caption": "empty file"},
        {"id": 107, "image_id": 8, "caption": 42},              # malformed
        {"id": 108, "image_id": 999, "caption": "orphan"},      # unknown image
        {"id": 100, "image_id": 1, "caption": "dup annotation"},  # duplicate ann id
        {"image_id": 1, "caption": "no id"},                    # malformed
        {"id": 109, "image_id": 10, "caption": uni},
        {"id": 110, "image_id": 1, "caption": "Third caption for one."},
    ],
}
write("coco/annotations/captions_train2014.json", json.dumps(coco_train, indent=1, ensure_ascii=False).encode())
coco_val = {
    "images": [{"id": 20, "file_name": "b20.jpg"}, {"id": 21, "file_name": "b21.jpg"}],
    "annotations": [
        {"id": 200, "image_id": 20, "caption": "A val image."},
        {"id": 201, "image_id": 21, "caption": "Another val image."},
        {"id": 202, "image_id": 20, "caption": "Second val caption."},
    ],
}
write("coco/annotations/captions_val2014.json", json.dumps(coco_val, indent=1).encode())
expected["coco_train"] = {
    "input_records": 10 + 13,
    "keys": {"1": ["A cat on a mat.", "Two dogs.", "Third caption for one."],
             "2": ["A red bus."], "10": [uni]},
    "split": "train2014",
    "paths": {"1": "train2014/a1.jpg", "2": "train2014/a2.jpg", "10": "train2014/a10.jpg"},
    "rejects": {"malformed_record": 4, "missing_image": 2, "duplicate_key": 1, "no_captions": 2,
                "empty_caption": 2, "unknown_image": 1, "duplicate_annotation_id": 1},
}
expected["coco_val"] = {
    "input_records": 5,
    "keys": {"20": ["A val image.", "Second val caption."], "21": ["Another val image."]},
    "split": "val2014", "rejects": {},
}

# A syntax error at a known place, and invalid UTF-8 inside a string.
bad = '{\n  "images": [\n    {"id": 1,, "file_name": "x"}\n  ],\n  "annotations": []\n}\n'
write("coco/annotations/malformed.json", bad.encode())
try:
    json.loads(bad)
except json.JSONDecodeError as e:
    expected["malformed"] = {"line": e.lineno, "column": e.colno}
write("coco/annotations/latin1.json",
      b'{"images": [{"id": 1, "file_name": "a1.jpg"}],\n "annotations": [{"id": 1, "image_id": 1, "caption": "caf\xe9"}]}\n')
expected["latin1"] = {"line": 2}
write("coco/annotations/not_coco.json", b'{"images": []}\n')

# ------------------------------------------------------------ Karpathy --
def kimg(cocoid, fp, fn, split, raws):
    d = {"filepath": fp, "filename": fn, "split": split, "sentences": [{"raw": r, "tokens": r.split()} for r in raws]}
    if cocoid is not None:
        d["cocoid"] = cocoid
    return d

kimages = [
    kimg(1, "train2014", "a1.jpg", "train", ["k one a", "k one b"]),
    kimg(2, "train2014", "a2.jpg", "restval", ["k two"]),
    kimg(20, "val2014", "b20.jpg", "test", ["k twenty a", "k twenty b"]),
    kimg(21, "val2014", "b21.jpg", "val", ["k twenty-one"]),
    kimg(None, "train2014", "a7.jpg", "train", ["no cocoid"]),   # malformed
    kimg(1, "train2014", "dup.jpg", "train", ["dup"]),           # duplicate key
    kimg(10, "train2014", "a10.jpg", "train", [""]),             # empty -> no captions
    kimg(5, "train2014", "missing5.jpg", "train", ["missing"]),  # missing image
    kimg(8, "train2014", "a8.jpg", 3, ["bad split"]),            # malformed split
]
kimages[3]["sentences"].append({"tokens": ["no", "raw"]})        # malformed sentence
write("karpathy/dataset_coco.json", json.dumps({"images": kimages, "dataset": "coco"}).encode())
krej = {"malformed_record": 3, "duplicate_key": 1, "empty_caption": 1, "no_captions": 1, "missing_image": 1}
expected["karpathy_all"] = {
    "input_records": 9,
    "keys": {"1": ["k one a", "k one b"], "2": ["k two"], "20": ["k twenty a", "k twenty b"], "21": ["k twenty-one"]},
    "splits": {"1": "train", "2": "restval", "20": "test", "21": "val"},
    "rejects": krej,
}
expected["karpathy_train_restval"] = {
    "input_records": 9,
    "keys": {"1": ["k one a", "k one b"], "2": ["k two"]},
    "excluded_images": 2, "excluded_captions": 3, "rejects": krej,
}

# --------------------------------------------------- Conceptual Captions --
tsv = (b"caption\turl\n"
       b"a cat\thttp://x/0.jpg\n"
       b"a dog\thttp://x/1.jpg\n"
       b"bad row with three\tcols\there\n"
       b"no tab at all\n"
       b"caf\xe9\thttp://x/5.jpg\n"
       b"\thttp://x/6.jpg\n"
       b"never downloaded\thttp://x/7.jpg\n"
       b"a bird\thttp://x/8.jpg\n"
       b"dup url first\thttp://x/dup.jpg\n"
       b"dup url second\thttp://x/dup.jpg\r\n"
       b"image lost\thttp://x/12.jpg\n")
write("cc/cc.tsv", tsv)


def meta(key, url, status="success", caption=None):
    d = {"caption": caption, "url": url, "key": key, "status": status,
         "error_message": None if status == "success" else "HTTP Error 404: Not Found",
         "width": 1 if status == "success" else None, "height": 1 if status == "success" else None}
    return json.dumps(d, indent=4).encode()


# (key, image ext or None, txt bytes or None, json bytes)
samples = [
    ("000000000", "jpg", b"a cat", meta("000000000", "http://x/0.jpg", caption="a cat")),
    ("000000001", None, b"a dog", meta("000000001", "http://x/1.jpg", "failed_to_download", "a dog")),
    ("000000005", "jpg", b"caf\xe9", meta("000000005", "http://x/5.jpg", caption="caf\u00e9")),
    ("000000006", "jpg", b"", meta("000000006", "http://x/6.jpg", caption="")),
    ("000000008", "webp", b"a bird", meta("000000008", "http://x/8.jpg", caption="a bird")),
    ("000000009", "jpg", None, meta("000000009", "http://x/dup.jpg", caption="dup url first")),
    ("000000010", "jpg", None, meta("000000010", "http://x/dup.jpg", caption="dup url second")),
    ("000000011", "jpg", b"not in tsv", meta("000000011", "http://x/not-in-tsv.jpg", caption="not in tsv")),
    ("000000012", None, b"image lost", meta("000000012", "http://x/12.jpg", caption="image lost")),
    ("000000013", "jpg", b"bad json", b"{not json"),
]
for key, ext, txt, js in samples:
    if ext:
        write(f"cc/files/00000/{key}.{ext}", WEBP if ext == "webp" else JPEG)
    if txt is not None:
        write(f"cc/files/00000/{key}.txt", txt)
    write(f"cc/files/00000/{key}.json", js)
write("cc/files/00000.parquet", b"PAR1 not read")
write("cc/files/00000_stats.json", b'{"count": 10}')
expected["cc_files_tsv"] = {
    "input_records": 11 + 10,
    "keys": {"000000000": ["a cat"], "000000008": ["a bird"], "000000009": ["dup url first"],
             "000000010": ["dup url second"]},
    "rejects": {"tsv_columns": 2, "download_failed": 1, "invalid_utf8": 1, "empty_caption": 1, "no_captions": 2,
                "not_downloaded": 1, "url_mismatch": 1, "missing_image": 1, "malformed_record": 1},
}
expected["cc_files_notsv"] = {
    "input_records": 10,
    "keys": {"000000000": ["a cat"], "000000008": ["a bird"], "000000009": ["dup url first"],
             "000000010": ["dup url second"], "000000011": ["not in tsv"]},
    "rejects": {"download_failed": 1, "invalid_utf8": 1, "empty_caption": 1, "no_captions": 2,
                "missing_image": 1, "malformed_record": 1},
}


def tar_bytes(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mtime = 1388534400
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


members0, offsets = [], {}
for key, ext, txt, js in samples[:5] + [samples[8]]:
    if ext:
        members0.append((f"{key}.{ext}", WEBP if ext == "webp" else JPEG))
    members0.append((f"{key}.json", js))
    if txt is not None:
        members0.append((f"{key}.txt", txt))
members0 += [("000000014.jpg", b""), ("000000014.json", meta("000000014", "http://x/14.jpg")),
             ("000000014.txt", b"empty member")]
t0 = tar_bytes(members0)
write("cc/wds/00000.tar", t0)
with tarfile.open(fileobj=io.BytesIO(t0)) as tf:
    for ti in tf.getmembers():
        if ti.name.endswith((".jpg", ".webp")):
            offsets[ti.name.split(".")[0]] = [ti.offset_data, ti.size]
members1 = [("000000020.jpg", JPEG), ("000000020.json", meta("000000020", "http://x/20.jpg")),
            ("000000020.txt", b"tar good"), ("000000021.jpg", JPEG * 40),
            ("000000021.json", meta("000000021", "http://x/21.jpg")), ("000000021.txt", b"cut off")]
t1 = tar_bytes(members1)
with tarfile.open(fileobj=io.BytesIO(t1)) as tf:
    ti = [m for m in tf.getmembers() if m.name == "000000021.jpg"][0]
    cut = ti.offset_data + ti.size // 2  # inside 000000021.jpg's data
    for m in tf.getmembers():
        if m.name == "000000020.jpg":
            offsets["000000020"] = [m.offset_data, m.size]
write("cc/wds/00001.tar", t1[:cut])
write("cc/wds/README.txt", b"not a tar: ignored")
expected["cc_tar_notsv"] = {
    "input_records": 8,
    "keys": {"000000000": ["a cat"], "000000008": ["a bird"], "000000020": ["tar good"]},
    "tar": {k: {"path": ("00001.tar" if k == "000000020" else "00000.tar"), "offset": v[0], "length": v[1]}
            for k, v in offsets.items() if k in ("000000000", "000000008", "000000020")},
    "rejects": {"download_failed": 1, "invalid_utf8": 1, "empty_caption": 1, "no_captions": 2,
                "missing_image": 2, "truncated_tar_member": 1},
}
expected["jpeg_bytes_hex"] = JPEG.hex()

with open(os.path.join(out, "expected.json"), "w") as f:
    json.dump(expected, f, indent=1, ensure_ascii=False, sort_keys=True)
print("wrote", out)
