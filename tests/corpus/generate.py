"""Generate the hostile-input corpus: >= 300 cases across every entry point, each with its expected outcome.

Run ``python tests/corpus/generate.py DIR`` to write the cases (files plus
``cases.json``) into ``DIR``; ``tests/corpus/test_corpus.py`` builds the same
corpus in a temporary folder and runs every case through ``auditkit.cli.run``.

A case is a command line (``{case}`` is its own folder, ``{base}`` the shared
valid inputs: a 12-image PNG manifest, an untrained 16x16 smallcnn
checkpoint, a predictions table and the results.json of its audit), the exit
codes it may end with (2 for a hostile input; 0 or 1 for the few valid edge
cases), a fragment its one stderr line must contain, and, for a payload (a
pickle, a TorchScript program, a YAML Python tag, an imported module), the
marker file whose existence would prove it ran. Families: manifest, image,
npy, dicom, mask, predictions, embeddings, config, policy, results,
checkpoint, cli (numbers and flags), output (paths), env.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import shutil
import struct
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

SIZE = 16
N_IMAGES = 12
TALLY: Counter[str] = Counter()
"""What ``test_corpus.py`` counted (cases, clean exit 2, tracebacks, payloads run, inputs lost); conftest prints it."""


@dataclass
class Case:
    """One hostile input: how to run it and what must come out."""

    id: str
    family: str
    argv: list[str]
    expect: tuple[int, ...] = (2,)
    fragment: str | None = None
    marker: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    sys_path: str | None = None


# ---------------------------------------------------------------- shared valid inputs


def _png(path: Path, seed: int, size: int = SIZE) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(path)


def _rows(n: int = N_IMAGES) -> list[dict]:
    return [
        {"id": f"c{i:02d}", "image": f"img/{i:02d}.png", "label": i % 2, "patient_id": f"p{i:02d}",
         "site": "A" if i < n // 2 else "B", "split": "test", "sex": "FM"[i % 2]}
        for i in range(n)
    ]


def build_base(base: Path) -> None:
    """Write the shared valid inputs into ``base`` (manifest, images, checkpoint, predictions)."""
    import torch

    from auditkit.nets import save_checkpoint
    from auditkit.nets.smallcnn import SmallCNN

    base.mkdir(parents=True, exist_ok=True)
    for i in range(N_IMAGES):
        _png(base / "img" / f"{i:02d}.png", i)
    pd.DataFrame(_rows()).to_csv(base / "manifest.csv", index=False)
    torch.manual_seed(0)
    save_checkpoint(base / "model", SmallCNN(1, 2).eval(), model_meta())
    rng = np.random.default_rng(0)
    n = 120
    y = np.arange(n) % 2
    pd.DataFrame({
        "id": [f"i{i}" for i in range(n)], "y_true": y, "score": np.clip(0.3 * y + 0.7 * rng.random(n), 0, 1),
        "patient_id": [f"p{i}" for i in range(n)], "site": ["A", "B"] * (n // 2),
        "split": ["val", "val", "test", "test"] * (n // 4), "sex": rng.choice(["F", "M"], n),
    }).to_csv(base / "preds.csv", index=False)


def model_meta(arch: str = "smallcnn") -> dict:
    """Return the model.json fields of the shared checkpoint."""
    from auditkit.data.transforms import Preprocess

    return {
        "name": "tiny", "arch": arch,
        "classes": {"classes": ["normal", "lesion"], "positive_class": "lesion"},
        "input_size": [SIZE, SIZE], "in_channels": 1,
        "preprocess": Preprocess(input_size=(SIZE, SIZE), in_channels=1, mean=(0.5,), std=(0.25,)).to_dict(),
        "target_layer": "features.3",
    }


def build_results(base: Path) -> None:
    """Audit the shared predictions once: ``base/audit/results.json`` is the valid results document."""
    from auditkit.cli import run

    code = run(["--quiet", "audit", "--predictions", str(base / "preds.csv"), "--out", str(base / "audit"),
                "--n-boot", "50", "--no-report", "--no-explain", "--attributes", "sex"])
    if code != 0:  # pragma: no cover - the shared input is valid
        raise RuntimeError(f"the corpus's base audit failed with exit {code}")


# ---------------------------------------------------------------- helpers for cases


class Corpus:
    """Collects cases; each ``add`` gets a fresh folder to write its files into."""

    def __init__(self, root: Path, base: Path) -> None:
        self.root = root
        self.base = base
        self.cases: list[Case] = []

    def folder(self, case_id: str) -> Path:
        path = self.root / case_id.replace("/", "__")
        path.mkdir(parents=True, exist_ok=True)
        return path

    def add(self, case_id: str, argv: list[str], **kw) -> None:
        if any(c.id == case_id for c in self.cases):  # pragma: no cover - generator bug
            raise ValueError(f"duplicate case id {case_id}")
        family = case_id.split("/")[0]
        self.cases.append(Case(case_id, family, argv, **kw))

    # commands -------------------------------------------------------------
    def predict(self, case_dir: Path, manifest: Path | None = None, model: Path | None = None, *extra: str) -> list[str]:
        return ["--quiet", "predict", "--model", str(model or self.base / "model"),
                "--manifest", str(manifest or self.base / "manifest.csv"), "--device", "cpu",
                "--out", str(case_dir / "out.csv"), *extra]

    def audit(self, case_dir: Path, predictions: Path | None = None, *extra: str) -> list[str]:
        return ["--quiet", "audit", "--predictions", str(predictions or self.base / "preds.csv"),
                "--out", str(case_dir / "out"), "--n-boot", "50", "--no-report", "--no-explain", *extra]

    def gate(self, results: Path | None = None, policy: str = "default", *extra: str) -> list[str]:
        return ["--quiet", "gate", str(results or self.base / "audit" / "results.json"), "--policy", policy, *extra]


def _manifest_with(case_dir: Path, base: Path, mutate: Callable[[list[dict]], list[dict]] | None = None,
                   *, text: str | None = None, name: str = "m.csv") -> Path:
    """Write a manifest in ``case_dir`` whose images are copies of the base images (so a case can break one)."""
    shutil.copytree(base / "img", case_dir / "img", dirs_exist_ok=True)
    path = case_dir / name
    if text is not None:
        path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
        return path
    rows = _rows()
    if mutate is not None:
        rows = mutate(rows)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _set(row_index: int, **values):
    def mutate(rows):
        rows[row_index].update(values)
        return rows
    return mutate


# ---------------------------------------------------------------- families


def manifest_cases(c: Corpus) -> None:
    header = "id,image,label,patient_id,site,split,sex"
    good_rows = [",".join(str(r[k]) for k in header.split(",")) for r in _rows()]
    texts = {
        "empty-file": "",
        "header-only": header + "\n",
        "no-image-column": "id,label\nc00,0\n",
        "no-label-column": "id,image\nc00,img/00.png\n",
        "label-case-typo": "id,image,Label\nc00,img/00.png,0\n",
        "duplicate-label": "image,label,label\n" + "\n".join(f"img/{i:02d}.png,{i%2},{i%2}" for i in range(4)) + "\n",
        "whitespace-duplicate-label": "image,label, label \n" + "\n".join(f"img/{i:02d}.png,{i%2},{i%2}" for i in range(4)) + "\n",
        "whitespace-duplicate-image": "image, image,label\n" + "\n".join(f"img/{i:02d}.png,img/{i:02d}.png,{i%2}" for i in range(4)) + "\n",
        "ragged-rows": header + "\n" + good_rows[0] + ",extra,extra\n",
        "unclosed-quote": header + '\n"c00,img/00.png,0\n',
        "reserved-y-true": "image,label,y_true\nimg/00.png,0,0\n",
        "half-bbox": "image,label,bbox_x0,bbox_y0\nimg/00.png,0,1,1\n",
        "only-one-class": "image,label\n" + "\n".join(f"img/{i:02d}.png,1" for i in range(4)) + "\n",
        "names-ambiguous": "image,label\n" + "\n".join(f"img/{i:02d}.png,{'ab'[i%2]}" for i in range(4)) + "\n",
        "bom-and-crlf": "\ufeffimage,label\r\nimg/00.png,0\r\nimg/01.png,1\r\n",  # valid: BOM and CRLF are read
    }
    for name, text in texts.items():
        d = c.folder(f"manifest/{name}")
        m = _manifest_with(d, c.base, text=text)
        expect = (0,) if name in ("bom-and-crlf", "only-one-class") else (2,)  # classes come from the model
        c.add(f"manifest/{name}", c.predict(d, m), expect=expect,
              fragment="appears more than once" if "duplicate" in name else None)
    d = c.folder("manifest/not-utf8")
    m = _manifest_with(d, c.base, text=None)
    m.write_bytes("image,label,site\nimg/00.png,0,Zürich\nimg/01.png,1,B\n".encode("latin-1"))
    c.add("manifest/not-utf8", c.predict(d, m), fragment="UTF-8")
    d = c.folder("manifest/binary-garbage")
    m = _manifest_with(d, c.base)
    m.write_bytes(os.urandom(2048))
    c.add("manifest/binary-garbage", c.predict(d, m))
    mutations = {
        "empty-image-cell": _set(3, image=""),
        "empty-label-cell": _set(3, label=""),
        "duplicate-id": _set(3, id="c00"),
        "path-escape-dotdot": _set(2, image="../../../../etc/hostname"),
        "path-absolute-outside": _set(2, image="/etc/hostname"),
        "path-nul-byte": _set(2, image="img/00\x00.png"),
        "path-very-long": _set(2, image="img/" + "a" * 5000 + ".png"),
        "path-missing-file": _set(2, image="img/nope.png"),
        "path-is-folder": _set(2, image="img"),
        "path-unsupported-suffix": _set(2, image="m.csv"),
        "split-unknown": _set(1, split="holdout"),
        "bbox-text": lambda rows: [dict(r, bbox_x0="a", bbox_y0=0, bbox_x1=4, bbox_y1=4) for r in rows],
        "bbox-inverted": lambda rows: [dict(r, bbox_x0=8, bbox_y0=8, bbox_x1=2, bbox_y1=2) for r in rows],
        "bbox-outside-image": lambda rows: [dict(r, bbox_x0=0, bbox_y0=0, bbox_x1=400, bbox_y1=4) for r in rows],
        "bbox-infinite": lambda rows: [dict(r, bbox_x0=0, bbox_y0=0, bbox_x1="inf", bbox_y1=4) for r in rows],
        "bbox-huge-digits": lambda rows: [dict(r, bbox_x0=0, bbox_y0=0, bbox_x1="9" * 5000, bbox_y1=4) for r in rows],
        "frame-negative": lambda rows: [dict(r, frame=-1) for r in rows],
        "frame-text": lambda rows: [dict(r, frame="first") for r in rows],
        "frame-beyond": lambda rows: [dict(r, frame=3) for r in rows],
        "frame-huge-digits": lambda rows: [dict(r, frame="9" * 5000) for r in rows],
        "mask-missing-file": _set(0, mask="img/nomask.png"),
        "label-unknown-class": _set(0, label="tumour"),
        "label-three-classes": lambda rows: [dict(r, label=i % 3) for i, r in enumerate(rows)],
        "huge-cell": _set(0, sex="x" * 1_000_000),
        "formula-cells": lambda rows: [dict(r, sex="=HYPERLINK(\"http://evil\")", site="@SUM(A1)") for r in rows],
        "html-cells": lambda rows: [dict(r, sex="<script>alert(1)</script>") for r in rows],
        "same-image-two-ids": _set(1, image="./img/00.png"),  # valid with a warning
        "unicode-ids": lambda rows: [dict(r, id=f"\u202e{r['id']}\u0301") for r in rows],
    }
    valid = {"formula-cells", "html-cells", "same-image-two-ids", "unicode-ids", "huge-cell"}
    for name, mutate in mutations.items():
        d = c.folder(f"manifest/{name}")
        m = _manifest_with(d, c.base, mutate)
        c.add(f"manifest/{name}", c.predict(d, m), expect=(0,) if name in valid else (2,))
    d = c.folder("manifest/symlink-loop")
    m = _manifest_with(d, c.base, _set(2, image="loop/a.png"))
    (d / "loop").symlink_to(d / "loop")
    c.add("manifest/symlink-loop", c.predict(d, m), fragment="symlink loop")
    d = c.folder("manifest/symlink-escape")
    m = _manifest_with(d, c.base, _set(2, image="out.png"))
    (d / "out.png").symlink_to("/etc/hostname")
    c.add("manifest/symlink-escape", c.predict(d, m), fragment="outside the data root")
    # Parquet manifests
    d = c.folder("manifest/parquet-corrupt")
    m = _manifest_with(d, c.base, name="m.parquet", text=b"PAR1" + os.urandom(200) + b"PAR1")
    c.add("manifest/parquet-corrupt", c.predict(d, m))
    d = c.folder("manifest/parquet-truncated")
    pd.DataFrame(_rows()).to_parquet(d / "full.parquet")
    m = _manifest_with(d, c.base, name="m.parquet", text=(d / "full.parquet").read_bytes()[:-40])
    (d / "full.parquet").unlink()
    c.add("manifest/parquet-truncated", c.predict(d, m))
    d = c.folder("manifest/parquet-int-labels-and-nulls")
    _manifest_with(d, c.base)
    frame = pd.DataFrame(_rows())
    frame.loc[2, "image"] = None
    frame.to_parquet(d / "m.parquet")
    c.add("manifest/parquet-int-labels-and-nulls", c.predict(d, d / "m.parquet"))
    d = c.folder("manifest/missing-file")
    c.add("manifest/missing-file", c.predict(d, d / "nope.csv"))
    d = c.folder("manifest/is-a-folder")
    (d / "dir.csv").mkdir()
    c.add("manifest/is-a-folder", c.predict(d, d / "dir.csv"))
    d = c.folder("manifest/suffix-xlsx")
    (d / "m.xlsx").write_text("image,label\n")
    c.add("manifest/suffix-xlsx", c.predict(d, d / "m.xlsx"))


def _with_image(c: Corpus, name: str, writer: Callable[[Path], str], *, fragment: str | None = None,
                expect: tuple[int, ...] = (2,), column: str = "image", family: str = "image") -> None:
    d = c.folder(f"{family}/{name}")
    _manifest_with(d, c.base)
    rel = writer(d)
    rows = _rows()
    rows[4][column] = rel
    pd.DataFrame(rows).to_csv(d / "m.csv", index=False)
    c.add(f"{family}/{name}", c.predict(d, d / "m.csv"), expect=expect, fragment=fragment)


def _bytes_writer(rel: str, data: bytes) -> Callable[[Path], str]:
    def write(d: Path) -> str:
        (d / rel).write_bytes(data)
        return rel
    return write


def image_cases(c: Corpus) -> None:
    png = (c.base / "img" / "00.png").read_bytes()
    cases = {
        "zero-byte-png": _bytes_writer("bad.png", b""),
        "random-bytes-png": _bytes_writer("bad.png", os.urandom(512)),
        "truncated-png": _bytes_writer("bad.png", png[: len(png) // 2]),
        "png-header-only": _bytes_writer("bad.png", png[:33]),
        "jpeg-garbage": _bytes_writer("bad.jpg", b"\xff\xd8\xff\xe0" + os.urandom(300)),
        "tiff-garbage": _bytes_writer("bad.tif", b"II*\x00" + os.urandom(300)),
        "gif-named-png": _bytes_writer("bad.png", b"GIF89a" + os.urandom(50)),
        "text-named-png": _bytes_writer("bad.png", b"hello, I am not an image\n"),
    }
    for name, writer in cases.items():
        _with_image(c, name, writer)

    def bomb(d: Path) -> str:
        # a valid PNG header declaring 100000x100000 pixels: a decompression bomb
        import zlib
        ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
        chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))  # noqa: E731
        (d / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))
        return "bomb.png"
    _with_image(c, "decompression-bomb", bomb)

    def multipage(d: Path) -> str:
        frames = [Image.fromarray(np.full((SIZE, SIZE), v, np.uint8)) for v in (10, 200)]
        frames[0].save(d / "multi.tif", save_all=True, append_images=frames[1:])
        return "multi.tif"
    _with_image(c, "multipage-tiff-without-frame", multipage, fragment="frame")

    def wrong_size(d: Path) -> str:
        _png(d / "big.png", 99, size=40)
        return "big.png"
    _with_image(c, "other-size-image", wrong_size, expect=(0,))  # resized, like any image of another size

    def rgba(d: Path) -> str:
        Image.fromarray(np.zeros((SIZE, SIZE, 4), np.uint8)).save(d / "rgba.png")
        return "rgba.png"
    _with_image(c, "rgba-png", rgba, expect=(0, 2))

    def sixteen(d: Path) -> str:
        Image.fromarray(np.full((SIZE, SIZE), 40000, np.uint16)).save(d / "s16.png")
        return "s16.png"
    _with_image(c, "uint16-png", sixteen, expect=(0,))


def _npy(rel: str, make: Callable[[], bytes]) -> Callable[[Path], str]:
    def write(d: Path) -> str:
        (d / rel).write_bytes(make())
        return rel
    return write


def _npy_bytes(array: np.ndarray) -> bytes:
    import io
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _npy_header(shape: tuple, dtype: str = "<f4", payload: bytes = b"") -> bytes:
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode("latin-1")
    header += b" " * ((64 - (10 + len(header) + 1) % 64) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + payload


class _Payload:
    """Unpickling this creates the marker file: proof that a pickle ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def npy_cases(c: Corpus) -> None:
    cases = {
        "zero-byte": lambda: b"",
        "bad-magic": lambda: b"NOTNUMPY" + os.urandom(100),
        "header-only": lambda: _npy_header((SIZE, SIZE)),
        "enormous-shape": lambda: _npy_header((200_000, 200_000)),
        "negative-shape": lambda: _npy_header((-4, 4)),
        "shape-not-tuple": lambda: b"\x93NUMPY\x01\x00" + struct.pack("<H", 54) + b"{'descr': '<f4', 'fortran_order': False, 'shape': 'x'}\n"[:54],
        "header-python-expression": lambda: b"\x93NUMPY\x01\x00" + struct.pack("<H", 46) + b"__import__('os').system('touch /tmp/x')      \n",
        "truncated-data": lambda: _npy_bytes(np.zeros((SIZE, SIZE), np.float32))[:-100],
        "four-dims": lambda: _npy_bytes(np.zeros((2, 2, 2, 2), np.float32)),
        "one-dim": lambda: _npy_bytes(np.zeros(16, np.float32)),
        "channel-first": lambda: _npy_bytes(np.zeros((3, SIZE, SIZE), np.float32)),
        "nan-values": lambda: _npy_bytes(np.full((SIZE, SIZE), np.nan, np.float32)),
        "inf-values": lambda: _npy_bytes(np.full((SIZE, SIZE), np.inf, np.float32)),
        "int64-ambiguous": lambda: _npy_bytes(np.zeros((SIZE, SIZE), np.int64)),
        "complex": lambda: _npy_bytes(np.zeros((SIZE, SIZE), np.complex64)),
        "structured": lambda: _npy_bytes(np.zeros((SIZE, SIZE), dtype=[("a", "<f4")])),
        "bool-valid": lambda: _npy_bytes(np.ones((SIZE, SIZE), bool)),
        "uint8-valid": lambda: _npy_bytes(np.full((SIZE, SIZE), 7, np.uint8)),
        "fortran-valid": lambda: _npy_bytes(np.asfortranarray(np.random.default_rng(0).random((SIZE, SIZE), np.float32))),
    }
    for name, make in cases.items():
        expect = (0,) if name.endswith("-valid") else (2,)
        _with_image(c, name, _npy("bad.npy", make), family="npy", expect=expect)
    d = c.folder("npy/pickled-object")
    marker = d / "PWNED-npy"
    _manifest_with(d, c.base)
    np.save(d / "bad.npy", np.array([_Payload(str(marker))], dtype=object), allow_pickle=True)
    rows = _rows()
    rows[4]["image"] = "bad.npy"
    pd.DataFrame(rows).to_csv(d / "m.csv", index=False)
    c.add("npy/pickled-object", c.predict(d, d / "m.csv"), marker=str(marker), fragment="never unpickles")


def dicom_cases(c: Corpus) -> None:
    import pydicom
    from pydicom.data import get_testdata_file

    source = get_testdata_file("CT_small.dcm")

    def mutated(fn: Callable) -> Callable[[Path], str]:
        def write(d: Path) -> str:
            ds = pydicom.dcmread(source)
            fn(ds)
            ds.save_as(d / "x.dcm", enforce_file_format=False)
            return "x.dcm"
        return write

    def drop(*tags):
        def fn(ds):
            for tag in tags:
                if tag in ds:
                    delattr(ds, tag)
        return fn

    def palette(ds):
        ds.PhotometricInterpretation = "PALETTE COLOR"

    def palette_bad_descriptor(ds):
        ds.PhotometricInterpretation = "PALETTE COLOR"
        ds.add_new(0x00281101, "US", [256, 0, 16])  # a red descriptor, and no table

    def rows_zero(ds):
        ds.Rows = 0

    def huge_dims(ds):
        ds.Rows, ds.Columns = 60000, 60000

    def frames(ds):
        ds.NumberOfFrames = 4

    def frames_text(ds):
        ds.add_new(0x00280008, "IS", "1")
        ds[0x00280008]._value = "many"  # an IS value that is not a number, as a broken exporter writes it

    def bits(ds):
        ds.BitsAllocated = 3

    def ybr(ds):
        ds.PhotometricInterpretation = "YBR_FULL"

    def syntax(ds):
        from pydicom.encaps import encapsulate

        ds.PixelData = encapsulate([ds.PixelData])
        ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: no decoder

    def window_zero(ds):
        ds.WindowCenter, ds.WindowWidth = 40, 0

    def rescale_text(ds):
        ds.add_new(0x00281053, "DS", "1")
        ds[0x00281053]._value = "abc"

    cases = {
        "no-pixel-data": drop("PixelData"),
        "no-rows": drop("Rows", "Columns"),
        "palette-without-lut": palette,
        "palette-bad-descriptor": palette_bad_descriptor,
        "rows-zero": rows_zero,
        "huge-dimensions": huge_dims,
        "multiframe-without-frame": frames,
        "frames-not-a-number": frames_text,
        "bits-allocated-3": bits,
        "ybr-on-grayscale": ybr,
        "undecodable-syntax": syntax,
        "window-width-zero": window_zero,
        "rescale-slope-text": rescale_text,
    }
    for name, fn in cases.items():
        expect = (0, 2) if name in ("window-width-zero", "frames-not-a-number") else (2,)
        _with_image(c, name, mutated(fn), family="dicom", expect=expect)
    raw = Path(source).read_bytes()
    for name, data in {
        "truncated": raw[: len(raw) // 2],
        "magic-then-garbage": b"\0" * 128 + b"DICM" + os.urandom(400),
        "zero-byte": b"",
        "preamble-only": b"\0" * 128 + b"DICM",
    }.items():
        _with_image(c, name, _bytes_writer("x.dcm", data), family="dicom")
    _with_image(c, "valid-ct", _bytes_writer("x.dcm", raw), family="dicom", expect=(0,))  # resized to 16x16


def mask_cases(c: Corpus) -> None:
    def sized(size: int):
        def write(d: Path) -> str:
            _png(d / "mask.png", 5, size=size)
            return "mask.png"
        return write
    _with_image(c, "wrong-size", sized(SIZE * 2), column="mask", family="mask", fragment="size")
    _with_image(c, "garbage", _bytes_writer("mask.png", os.urandom(300)), column="mask", family="mask")
    _with_image(c, "zero-byte-npy", _bytes_writer("mask.npy", b""), column="mask", family="mask")
    _with_image(c, "enormous-npy", _bytes_writer("mask.npy", _npy_header((100_000, 100_000), "|u1")), column="mask", family="mask")
    _with_image(c, "escape", lambda d: "../../../../etc/hostname", column="mask", family="mask")
    _with_image(c, "valid", sized(SIZE), column="mask", family="mask", expect=(0,))


def _preds_text(c: Corpus) -> str:
    return (c.base / "preds.csv").read_text()


def predictions_cases(c: Corpus) -> None:
    good = pd.read_csv(c.base / "preds.csv", dtype={"id": str})

    def table(name: str, mutate: Callable[[pd.DataFrame], pd.DataFrame], *, expect=(2,), fragment=None, suffix=".csv"):
        d = c.folder(f"predictions/{name}")
        frame = mutate(good.copy())
        path = d / f"p{suffix}"
        if suffix == ".parquet":
            frame.to_parquet(path)
        else:
            frame.to_csv(path, index=False, sep="\t" if suffix == ".tsv" else ",")
        c.add(f"predictions/{name}", c.audit(d, path, "--operating-point", "threshold:0.5"), expect=expect, fragment=fragment)

    def col(name, value):
        def m(f):
            f[name] = value
            return f
        return m

    def at(name, row, value):
        def m(f):
            f[name] = f[name].astype(object)
            f.loc[row, name] = value
            return f
        return m

    table("no-score", lambda f: f.drop(columns=["score"]))
    table("no-y-true", lambda f: f.drop(columns=["y_true"]))
    table("no-id", lambda f: f.drop(columns=["id"]), expect=(0, 2))
    table("score-above-one", at("score", 3, 1.5))
    table("score-negative", at("score", 3, -0.1))
    table("score-nan", at("score", 3, float("nan")))
    table("score-text", at("score", 3, "high"))
    table("score-inf", at("score", 3, "inf"))
    table("y-true-three-values", at("y_true", 3, 2))
    table("y-true-text", at("y_true", 3, "maybe"))
    table("y-true-empty", at("y_true", 3, None))
    table("duplicate-ids", at("id", 3, "i0"))
    table("empty-id", at("id", 3, None))
    table("split-unknown", at("split", 3, "holdout"))
    table("one-class-only", col("y_true", 1), expect=(0, 2))  # undefined numbers with reasons, or refused
    table("duplicate-score-column", lambda f: f.assign(score_lesion=f["score"]), expect=(0, 2))
    table("formula-ids", lambda f: f.assign(id="=" + f["id"]), expect=(0,))
    table("html-attribute", lambda f: f.assign(sex="<img src=x onerror=alert(1)>"), expect=(0,))
    table("tsv-valid", lambda f: f, suffix=".tsv", expect=(0,))
    table("parquet-valid", lambda f: f, suffix=".parquet", expect=(0,))
    for name, text in {
        "empty-file": "",
        "header-only": "id,y_true,score\n",
        "ragged": "id,y_true,score\na,1,0.5,extra\n",
        "binary": None,
    }.items():
        d = c.folder(f"predictions/{name}")
        (d / "p.csv").write_bytes(os.urandom(1000) if text is None else text.encode())
        c.add(f"predictions/{name}", c.audit(d, d / "p.csv"))
    d = c.folder("predictions/unsupported-suffix")
    (d / "p.json").write_text("{}")
    c.add("predictions/unsupported-suffix", c.audit(d, d / "p.json"))
    d = c.folder("predictions/missing")
    c.add("predictions/missing", c.audit(d, d / "nope.csv"))
    d = c.folder("predictions/parquet-corrupt")
    (d / "p.parquet").write_bytes(b"PAR1" + os.urandom(300) + b"PAR1")
    c.add("predictions/parquet-corrupt", c.audit(d, d / "p.parquet"))
    import pyarrow as pa
    import pyarrow.parquet as pq
    metas = {
        "meta-not-json": b"{not json",
        "meta-a-list": b"[1, 2, 3]",
        "meta-classes-wrong-type": json.dumps({"classes": 7}).encode(),
        "meta-classes-garbage": json.dumps({"classes": ["a"], "positive_class": ["x"]}).encode(),
        "meta-model-name-number": json.dumps({"model_name": 12, "model_sha256": []}).encode(),
        "meta-deep": ("[" * 100_000 + "]" * 100_000).encode(),
        "meta-not-utf8": b"\xff\xfe\x00",
        "meta-huge-int": ("{\"x\": " + "9" * 5000 + "}").encode(),
    }
    for name, raw in metas.items():
        d = c.folder(f"predictions/{name}")
        arrow = pa.Table.from_pandas(good, preserve_index=False)
        arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), b"auditkit": raw})
        pq.write_table(arrow, d / "p.parquet")
        c.add(f"predictions/{name}", c.audit(d, d / "p.parquet", "--operating-point", "threshold:0.5"),
              fragment=None if name == "meta-classes-garbage" else "metadata")


def embeddings_cases(c: Corpus) -> None:
    good = pd.read_csv(c.base / "preds.csv", dtype={"id": str})

    def emb(name: str, write: Callable[[Path], Path], *, expect=(2,)):
        d = c.folder(f"embeddings/{name}")
        path = write(d)
        c.add(f"embeddings/{name}", c.audit(d, None, "--embeddings", str(path), "--operating-point", "threshold:0.5"), expect=expect)

    ids = good["id"].tolist()
    frame = pd.DataFrame({"id": ids, **{f"emb_{k}": np.random.default_rng(k).random(len(ids)) for k in range(4)}})
    emb("zero-byte-npy", lambda d: _write(d / "e.npy", b""))
    emb("zero-byte-parquet", lambda d: _write(d / "e.parquet", b""))
    emb("empty-csv", lambda d: _write(d / "e.csv", b""))
    emb("corrupt-parquet", lambda d: _write(d / "e.parquet", b"PAR1" + os.urandom(200) + b"PAR1"))
    emb("no-id-column", lambda d: _frame(d / "e.csv", frame.drop(columns=["id"])))
    emb("missing-ids", lambda d: _frame(d / "e.csv", frame.iloc[:10]))
    emb("nan-values", lambda d: _frame(d / "e.csv", frame.assign(emb_0=np.nan)))
    emb("text-values", lambda d: _frame(d / "e.csv", frame.assign(emb_1="x")))
    emb("no-features", lambda d: _frame(d / "e.csv", frame[["id"]]))
    emb("npy-plain-array", lambda d: _write(d / "e.npy", _npy_bytes(np.zeros((len(ids), 4)))))
    emb("npy-enormous-header", lambda d: _write(d / "e.npy", _npy_header((10**9, 10**4), "<f8")))
    emb("wrong-suffix", lambda d: _write(d / "e.txt", b"x"))
    emb("valid", lambda d: _frame(d / "e.csv", frame), expect=(0,))
    d = c.folder("embeddings/pickled")
    marker = d / "PWNED-embeddings"
    np.save(d / "e.npy", np.array([_Payload(str(marker))], dtype=object), allow_pickle=True)
    c.add("embeddings/pickled", c.audit(d, None, "--embeddings", str(d / "e.npy")), marker=str(marker))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _frame(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)


def _yaml_hostile(marker: str) -> dict[str, str | bytes]:
    return {
        "alias-bomb": LAUGHS,
        "deep-nesting": "x: " + "[" * 20000 + "]" * 20000,
        "deep-mapping": "".join("  " * i + f"k{i}:\n" for i in range(300)) + "  " * 300 + "v\n",
        "huge-integer": "n_boot: " + "9" * 5000 + "\n",
        "impossible-date": "date: 2024-02-30\n",
        "unhashable-key": "? [1, 2]\n: x\n",
        "repeated-key": "n_boot: 50\nn_boot: 60\n",
        "two-documents": "n_boot: 50\n---\nn_boot: 60\n",
        "nul-byte": "n_boot: 50\x00\n",
        "not-utf8": "model_name: Zürich\n".encode("latin-1"),
        "unclosed-flow": "attributes: [sex\n",
        "bad-indent": "a:\n  b: 1\n c: 2\n",
        "tab-indent": "a:\n\tb: 1\n",
        "python-object-tag": f"!!python/object/apply:os.makedirs ['{marker}']\n",
        "python-name-tag": "x: !!python/name:os.system\n",
        "top-level-list": "- a\n- b\n",
        "top-level-scalar": "just text\n",
        "oversized": "a: b\n" * 300_000,
        "binary-garbage": os.urandom(2000),
        "anchor-cycle": "a: &a [*a]\n",
        "integer-key": "00: x\n",  # found by make fuzz: a key YAML reads as a number
        "control-character": "a: \x01\n",  # found by the hypothesis property
    }


def config_cases(c: Corpus) -> None:
    settings = {
        "n-boot-text": "n_boot: lots\n",
        "n-boot-negative": "n_boot: -5\n",
        "n-boot-float": "n_boot: 50.5\n",
        "n-boot-huge": "n_boot: 1000000000000\n",
        "n-boot-bool": "n_boot: true\n",
        "seed-negative": "seed: -1\n",
        "seed-huge": "seed: 99999999999999999999999\n",
        "ci-level-above-one": "ci_level: 1.5\n",
        "ci-level-nan": "ci_level: .nan\n",
        "ci-method-unknown": "ci_method: magic\n",
        "unknown-setting": "bootstraps: 50\n",
        "trust-model-code": "trust_model_code: true\n",
        "attributes-not-list": "attributes: 7\n",
        "attributes-nested": "attributes: [[sex]]\n",
        "intersections-bad": "intersections: [sex+sex]\n",
        "operating-point-bad": "operating_point: best\n",
        "saliency-wrong-type": "saliency: 5\n",
        "saliency-unknown-key": "saliency:\n  max_imgs: 3\n",
        "policy-missing-file": "policy: nope.yaml\n",
        "date-text": "date: yesterday\n",
        "audit-section-not-mapping": "audit: [1, 2]\n",
        "huge-string": "model_name: " + "x" * 500_000 + "\n",
        "out-under-proc": "out: /proc/auditkit-out\n",
        "manifest-without-model": "manifest: m.csv\n",
    }
    for name, text in settings.items():
        d = c.folder(f"config/{name}")
        (d / "audit.yaml").write_text(text)
        argv = ["--quiet", "audit", "--predictions", str(c.base / "preds.csv"),
                "--no-report", "--no-explain", "--config", str(d / "audit.yaml")]
        if name != "out-under-proc":
            argv += ["--out", str(d / "out")]
        # a huge seed is a valid seed; a long model name is a long name
        c.add(f"config/{name}", argv, expect=(0, 2) if name in ("seed-huge", "huge-string") else (2,))
    for name, text in _yaml_hostile("").items():
        d = c.folder(f"config/yaml-{name}")
        marker = d / "PWNED-config"
        text = _yaml_hostile(str(marker))[name]
        (d / "audit.yaml").write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
        argv = ["--quiet", "audit", "--predictions", str(c.base / "preds.csv"), "--out", str(d / "out"),
                "--no-report", "--no-explain", "--config", str(d / "audit.yaml")]
        c.add(f"config/yaml-{name}", argv, marker=str(marker) if "python" in name else None)
    d = c.folder("config/missing-file")
    c.add("config/missing-file", c.audit(d, None, "--config", str(d / "nope.yaml")))
    d = c.folder("config/is-a-folder")
    (d / "audit.yaml").mkdir()
    c.add("config/is-a-folder", c.audit(d, None, "--config", str(d / "audit.yaml")))


_RULE = "  - id: auroc\n    metric: discrimination.test.auroc\n    min: 0.5\n"


def policy_cases(c: Corpus) -> None:
    head = "name: p\nversion: '1'\nrules:\n"
    texts = {
        "no-rules-key": "name: p\nversion: '1'\n",
        "rules-empty": head.replace("rules:\n", "rules: []\n"),
        "rules-not-list": "name: p\nversion: '1'\nrules: 5\n",
        "rule-not-mapping": head + "  - 7\n",
        "no-name": "version: '1'\nrules:\n" + _RULE,
        "name-a-list": "name: [a]\nversion: '1'\nrules:\n" + _RULE,
        "unknown-field": head + _RULE + "    colour: red\n",
        "no-operator": head + "  - id: a\n    metric: discrimination.test.auroc\n",
        "two-operators": head + _RULE + "    max: 0.9\n",
        "min-text": head + "  - id: a\n    metric: discrimination.test.auroc\n    min: high\n",
        "min-nan": head + "  - id: a\n    metric: discrimination.test.auroc\n    min: .nan\n",
        "min-inf": head + "  - id: a\n    metric: discrimination.test.auroc\n    min: .inf\n",
        "use-unknown": head + _RULE + "    use: median\n",
        "duplicate-rule-id": head + _RULE + _RULE,
        "metric-unknown-path": head + "  - id: a\n    metric: discrimination.test.nonsense\n    min: 0.5\n",
        "metric-wildcard-empty": head + "  - id: a\n    metric: fairness.nothing.*.fnr\n    max: 0.5\n",
        "metric-empty": head + "  - id: a\n    metric: ''\n    min: 0.5\n",
        "metric-huge": head + "  - id: a\n    metric: " + "x." * 50_000 + "x\n    min: 0.5\n",
        "id-huge": head + "  - id: " + "x" * 100_000 + "\n    metric: discrimination.test.auroc\n    min: 0.5\n",
        "id-markup": head + "  - id: '<script>alert(1)</script>'\n    metric: discrimination.test.auroc\n    min: 0.5\n",
        "name-markup": "name: '<img src=x onerror=alert(1)>`` ` ``'\nversion: '1'\nrules:\n" + _RULE,
        "equals-on-number": head + "  - id: a\n    metric: discrimination.test.auroc\n    equals: yes\n",
        "block-on-insufficient-text": "name: p\nversion: '1'\nblock_on_insufficient: sometimes\nrules:\n" + _RULE,
    }
    valid = {"id-markup", "name-markup", "id-huge"}
    for name, text in texts.items():
        d = c.folder(f"policy/{name}")
        (d / "policy.yaml").write_text(text)
        summary = ["--summary", str(d / "out-summary.md")] if name in valid else []
        c.add(f"policy/{name}", c.gate(None, str(d / "policy.yaml"), *summary), expect=(0, 1, 2) if name in valid else (2,))
    for name in _yaml_hostile(""):
        d = c.folder(f"policy/yaml-{name}")
        marker = d / "PWNED-policy"
        text = _yaml_hostile(str(marker))[name]
        (d / "policy.yaml").write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
        c.add(f"policy/yaml-{name}", c.gate(None, str(d / "policy.yaml")), marker=str(marker) if "python" in name else None)
    d = c.folder("policy/missing")
    c.add("policy/missing", c.gate(None, str(d / "nope.yaml")))
    d = c.folder("policy/unknown-shipped-name")
    c.add("policy/unknown-shipped-name", c.gate(None, "strictest"))
    d = c.folder("policy/is-a-folder")
    (d / "p.yaml").mkdir()
    c.add("policy/is-a-folder", c.gate(None, str(d / "p.yaml")))


def results_cases(c: Corpus) -> None:
    good = json.loads((c.base / "audit" / "results.json").read_text())

    def write(name: str, data: bytes | str, *, command: str = "gate", expect=(2,), fragment=None):
        d = c.folder(f"results/{name}")
        path = d / "results.json"
        path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
        argv = c.gate(path) if command == "gate" else ["--quiet", "report", str(path), "--out", str(d / "out-report.html")]
        c.add(f"results/{name}", argv, expect=expect, fragment=fragment)

    def mutated(fn) -> str:
        doc = copy.deepcopy(good)
        fn(doc)
        return json.dumps(doc)

    write("empty", "")
    write("not-json", "{results")
    write("top-level-list", "[1, 2]")
    write("top-level-null", "null")
    write("deep-nesting", "[" * 100_000 + "]" * 100_000, fragment="deep")
    write("deep-object", '{"a":' * 100_000 + "1" + "}" * 100_000, fragment="deep")
    write("nan-literal", json.dumps(good).replace('"schema_version"', '"x": NaN, "schema_version"', 1), fragment="NaN")
    write("infinity-literal", json.dumps(good).replace('"schema_version"', '"x": Infinity, "schema_version"', 1))
    write("minus-infinity", json.dumps(good).replace('"schema_version"', '"x": -Infinity, "schema_version"', 1))
    write("huge-int", json.dumps(good).replace('"schema_version"', '"x": ' + "9" * 5000 + ', "schema_version"', 1))
    write("not-utf8", b"\xff\xfe{}")
    write("schema-version-missing", mutated(lambda d: d.pop("schema_version")))
    write("schema-version-future", mutated(lambda d: d.update(schema_version="99.0")))
    write("schema-version-huge", mutated(lambda d: d.update(schema_version="9" * 10_000)))
    write("discrimination-wrong-type", mutated(lambda d: d.update(discrimination=[1, 2])))
    write("estimate-text", mutated(lambda d: d["discrimination"]["test"]["auroc"].update(estimate="high")))
    write("model-wrong-type", mutated(lambda d: d.update(model="tiny")))
    write("huge-string-value", mutated(lambda d: d["discrimination"]["test"].update(auroc="x" * 1_000_000)))
    write("gallery-wrong-type", mutated(lambda d: d.update(gallery=[5, "x"])), command="report")
    write("gallery-entry-wrong-type", mutated(lambda d: d.update(gallery={"gradcam": 7})), command="report")
    write("report-not-json", "{", command="report")
    write("markup-model-name", mutated(lambda d: d["model"].update(name="<script>alert(1)</script>")), expect=(0, 1))
    d = c.folder("results/missing")
    c.add("results/missing", c.gate(d / "results.json"))
    d = c.folder("results/folder-without-results")
    c.add("results/folder-without-results", c.gate(d))
    d = c.folder("results/decompression-bomb-in-gallery")
    doc = copy.deepcopy(good)
    import zlib
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))  # noqa: E731
    (d / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))
    doc["gallery"] = [{"id": "c00", "category": "true_positive", "cohort": "test", "y_true": 1, "score": 0.9,
                       "image": "bomb.png", "overlays": {"gradcam": "bomb.png"}, "mask": "bomb.png"}]
    (d / "results.json").write_text(json.dumps(doc))
    # the report renders with a crossed panel for the refused image, or refuses the document
    c.add("results/decompression-bomb-in-gallery", ["--quiet", "report", str(d / "results.json"), "--out", str(d / "out-report.html")],
          expect=(0, 2))


def _checkpoint(c: Corpus, name: str, mutate: Callable[[Path, dict], None], *, expect=(2,), fragment=None, marker=None, sys_path=None):
    d = c.folder(f"checkpoint/{name}")
    model = d / "model"
    shutil.copytree(c.base / "model", model)
    meta = json.loads((model / "model.json").read_text())
    mutate(model, meta)
    if meta is not None and (model / "model.json").exists() and not getattr(mutate, "raw", False):
        (model / "model.json").write_text(json.dumps(meta))
    c.add(f"checkpoint/{name}", c.predict(d, None, model), expect=expect, fragment=fragment, marker=marker, sys_path=sys_path)


def _raw(fn):
    fn.raw = True
    return fn


def checkpoint_cases(c: Corpus) -> None:
    def field_set(key, value):
        return lambda model, meta: meta.__setitem__(key, value)

    def field_drop(key):
        return lambda model, meta: meta.pop(key)

    for name, mutate in {
        "input-size-40000": field_set("input_size", [40000, 40000]),
        "input-size-negative": field_set("input_size", [-16, 16]),
        "input-size-text": field_set("input_size", "16x16"),
        "input-size-three": field_set("input_size", [16, 16, 16]),
        "in-channels-zero": field_set("in_channels", 0),
        "in-channels-huge": field_set("in_channels", 10**6),
        "classes-not-mapping": field_set("classes", ["a", "b"]),
        "classes-empty": field_set("classes", {"classes": []}),
        "preprocess-text": field_set("preprocess", "imagenet"),
        "preprocess-missing-keys": field_set("preprocess", {}),
        "target-layer-number": field_set("target_layer", 3),
        "arch-unknown": field_set("arch", "resnet9000"),
        "arch-factory-untrusted": field_set("arch", "os:system"),
        "arch-empty": field_set("arch", ""),
        "format-wrong": field_set("format", "keras"),
        "format-version-future": field_set("format_version", 99),
        "format-version-text": field_set("format_version", "1"),
        "missing-weights-field": field_drop("weights"),
        "weights-not-mapping": field_set("weights", "weights.safetensors"),
        "weights-outside-dotdot": lambda model, meta: meta["weights"].update(file="../../model/weights.safetensors"),
        "weights-absolute": lambda model, meta: meta["weights"].update(file=str(c.base / "model" / "weights.safetensors")),
        "weights-missing-file": lambda model, meta: meta["weights"].update(file="nope.safetensors"),
        "weights-file-number": lambda model, meta: meta["weights"].update(file=5),
        "sha-mismatch": lambda model, meta: meta["weights"].update(sha256="0" * 64),
        "torchscript-without-archive": field_set("arch", "torchscript"),
        "training-wrong-type": field_set("training", [1]),
        "embedding-layer-number": field_set("embedding_layer", 5),
    }.items():
        _checkpoint(c, name, mutate)

    def raw_json(text: str):
        return _raw(lambda model, meta: (model / "model.json").write_text(text))
    _checkpoint(c, "model-json-empty", raw_json(""))
    _checkpoint(c, "model-json-not-json", raw_json("{model"))
    _checkpoint(c, "model-json-deep", raw_json("[" * 100_000 + "]" * 100_000))
    _checkpoint(c, "model-json-list", raw_json("[]"))
    _checkpoint(c, "model-json-missing", _raw(lambda model, meta: (model / "model.json").unlink()))
    _checkpoint(c, "weights-truncated", lambda model, meta: _truncate(model / "weights.safetensors", meta))
    _checkpoint(c, "weights-huge-header-length", lambda model, meta: _rewrite_weights(model, meta, struct.pack("<Q", 2**60) + b"{}"))
    _checkpoint(c, "weights-header-not-json", lambda model, meta: _rewrite_weights(model, meta, struct.pack("<Q", 10) + b"{not json!"))
    _checkpoint(c, "weights-wrong-tensors", lambda model, meta: _rewrite_weights(model, meta, _safetensors({"w": np.zeros(3, np.float32)})))
    _checkpoint(c, "weights-low-byte-0x80", lambda model, meta: _rewrite_weights(model, meta, _low_byte_0x80(model)), expect=(0,))
    _checkpoint(c, "splits-garbage", lambda model, meta: (model / "splits.csv").write_bytes(os.urandom(300)))
    _checkpoint(c, "splits-bad-value", lambda model, meta: (model / "splits.csv").write_text("patient_id,split\np00,holdout\n"))
    _checkpoint(c, "splits-wrong-columns", lambda model, meta: (model / "splits.csv").write_text("a,b\n1,2\n"))
    # payloads: none of these may run
    d_marker = c.root / "checkpoint__pickled-weights" / "PWNED-pickle"
    _checkpoint(c, "pickled-weights", lambda model, meta: _rewrite_weights(model, meta, pickle.dumps(_Payload(str(d_marker)))),
                marker=str(d_marker), fragment="never unpickles")
    d_marker = c.root / "checkpoint__torch-save-zip" / "PWNED-zip"
    _checkpoint(c, "torch-save-zip", lambda model, meta: _rewrite_weights(model, meta, _torch_zip(_Payload(str(d_marker)))),
                marker=str(d_marker))
    d_marker = c.root / "checkpoint__torchscript-payload" / "PWNED-torchscript"
    _checkpoint(c, "torchscript-payload", lambda model, meta: _torchscript(model, meta, d_marker),
                marker=str(d_marker), fragment="--trust-model-code")
    d_marker = c.root / "checkpoint__factory-module-payload" / "PWNED-module"
    module_dir = c.root / "checkpoint__factory-module-payload"
    module_dir.mkdir(parents=True, exist_ok=True)
    (module_dir / "corpus_payload_nets.py").write_text(f"open({str(d_marker)!r}, 'w').close()\ndef build(**kw):\n    raise SystemExit\n")
    _checkpoint(c, "factory-module-payload", field_set("arch", "corpus_payload_nets:build"),
                marker=str(d_marker), fragment="--trust-model-code", sys_path=str(module_dir))
    d = c.folder("checkpoint/folder-missing")
    c.add("checkpoint/folder-missing", c.predict(d, None, d / "nope"))
    d = c.folder("checkpoint/model-is-a-file")
    (d / "model.bin").write_bytes(b"x")
    c.add("checkpoint/model-is-a-file", c.predict(d, None, d / "model.bin"))


def _safetensors(tensors: dict) -> bytes:
    from safetensors.numpy import save
    return save(tensors)


def _rewrite_weights(model: Path, meta: dict, data: bytes) -> None:
    import hashlib
    (model / "weights.safetensors").write_bytes(data)
    meta["weights"]["sha256"] = meta["sha256"] = hashlib.sha256(data).hexdigest()


def _truncate(path: Path, meta: dict) -> None:
    data = path.read_bytes()
    _rewrite_weights(path.parent, meta, data[: len(data) // 2])


def _low_byte_0x80(model: Path) -> bytes:
    from safetensors.numpy import load, save
    state = load((model / "weights.safetensors").read_bytes())
    for pad in range(600):
        data = save(state, metadata={"pad": "x" * pad})
        if data[0] == 0x80:
            return data
    raise RuntimeError("no padding gives a 0x80 low byte")  # pragma: no cover


def _torch_zip(payload: object) -> bytes:
    import io

    import torch
    buffer = io.BytesIO()
    torch.save({"state_dict": payload}, buffer)
    return buffer.getvalue()


def _torchscript(model: Path, meta: dict, marker: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hardening"))
    try:
        from hardening_builders import write_torchscript_payload
    finally:
        sys.path.pop(0)
    shutil.rmtree(model)
    write_torchscript_payload(model, marker)
    meta.clear()
    meta.update(json.loads((model / "model.json").read_text()))


def cli_cases(c: Corpus) -> None:
    d = c.folder("cli/x")
    synth = ["--quiet", "synth", "--out", str(d / "out-s")]
    numbers = {
        "synth-n-zero": [*synth, "--n", "0"],
        "synth-n-negative": [*synth, "--n", "-5"],
        "synth-n-text": [*synth, "--n", "many"],
        "synth-n-huge": [*synth, "--n", "9" * 400],
        "synth-n-float": [*synth, "--n", "10.5"],
        "synth-size-zero": [*synth, "--size", "0"],
        "synth-size-huge": [*synth, "--size", "100000"],
        "synth-sites-zero": [*synth, "--sites", "0"],
        "synth-sites-huge": [*synth, "--sites", "100000"],
        "synth-workers-negative": [*synth, "--workers", "-1"],
        "synth-workers-zero": [*synth, "--workers", "0"],
        "synth-bit-depth-7": [*synth, "--bit-depth", "7"],
        "synth-seed-negative": [*synth, "--seed", "-1"],
        "synth-flaw-unknown": [*synth, "--flaws", "gremlins"],
        "synth-strength-two": [*synth, "--strength", "shortcut=2"],
        "synth-strength-nan": [*synth, "--strength", "shortcut=nan"],
        "synth-strength-text": [*synth, "--strength", "shortcut"],
        "synth-unknown-flag": [*synth, "--colour", "red"],
        "audit-n-boot-negative": c.audit(d, None, "--n-boot", "-1"),
        "audit-n-boot-text": c.audit(d, None, "--n-boot", "x"),
        "audit-seed-negative": c.audit(d, None, "--seed", "-4"),
        "audit-ci-method": c.audit(d, None, "--ci-method", "magic"),
        "audit-operating-point": c.audit(d, None, "--operating-point", "threshold:abc"),
        "audit-operating-point-range": c.audit(d, None, "--operating-point", "threshold:7"),
        "audit-attribute-missing": c.audit(d, None, "--attributes", "nope"),
        "audit-attribute-contract": c.audit(d, None, "--attributes", "score"),
        "audit-nothing": ["--quiet", "audit", "--out", str(d / "out-a")],
        "predict-batch-size-zero": c.predict(d, None, None, "--batch-size", "0"),
        "predict-device-unknown": c.predict(d, None, None, "--device", "tpu9"),
        "predict-num-workers-negative": c.predict(d, None, None, "--num-workers", "-3"),
        "train-input-size-huge": ["--quiet", "train", "--manifest", str(c.base / "manifest.csv"), "--arch", "smallcnn",
                                  "--out", str(d / "out-t"), "--input-size", "40000x40000", "--epochs", "0"],
        "train-input-size-text": ["--quiet", "train", "--manifest", str(c.base / "manifest.csv"), "--arch", "smallcnn",
                                  "--out", str(d / "out-t2"), "--input-size", "big"],
        "train-split-bad": ["--quiet", "train", "--manifest", str(c.base / "manifest.csv"), "--arch", "smallcnn",
                            "--out", str(d / "out-t3"), "--split", "0.5,0.5"],
        "train-arch-unknown": ["--quiet", "train", "--manifest", str(c.base / "manifest.csv"), "--arch", "resnet9000",
                               "--out", str(d / "out-t4")],
        "explain-select-unknown": ["--quiet", "explain", "--model", str(c.base / "model"), "--manifest",
                                   str(c.base / "manifest.csv"), "--out", str(d / "out-e"), "--select", "best"],
        "explain-limit-zero": ["--quiet", "explain", "--model", str(c.base / "model"), "--manifest",
                               str(c.base / "manifest.csv"), "--out", str(d / "out-e2"), "--limit", "0"],
        "explain-method-unknown": ["--quiet", "explain", "--model", str(c.base / "model"), "--manifest",
                                   str(c.base / "manifest.csv"), "--out", str(d / "out-e3"), "--methods", "lime", "--device", "cpu"],
        "unknown-command": ["--quiet", "frobnicate"],
        "gate-missing-policy-flag": ["--quiet", "gate", str(c.base / "audit" / "results.json")],
    }
    for name, argv in numbers.items():
        # a threshold above every score is a defined (if useless) operating point
        c.add(f"cli/{name}", argv, expect=(0, 2) if name == "audit-operating-point-range" else (2,))


def output_cases(c: Corpus) -> None:
    results = c.base / "audit" / "results.json"
    d = c.folder("output/predict-onto-manifest")
    m = _manifest_with(d, c.base)
    c.add("output/predict-onto-manifest", [*c.predict(d, m)[:-1], str(m), "--force"], fragment="input of this run")
    d = c.folder("output/predict-onto-weights")
    shutil.copytree(c.base / "model", d / "model")
    c.add("output/predict-onto-weights", [*c.predict(d, None, d / "model")[:-1], str(d / "model" / "weights.safetensors"), "--force"])
    d = c.folder("output/predict-existing-without-force")
    (d / "out.csv").write_text("keep me\n")
    c.add("output/predict-existing-without-force", c.predict(d), fragment="--force")
    d = c.folder("output/predict-bad-suffix")
    c.add("output/predict-bad-suffix", [*c.predict(d)[:-1], str(d / "out.xlsx")])
    d = c.folder("output/predict-under-proc")
    c.add("output/predict-under-proc", [*c.predict(d)[:-1], "/proc/auditkit/p.csv"])
    d = c.folder("output/predict-nul-byte")
    c.add("output/predict-nul-byte", [*c.predict(d)[:-1], str(d / "p\x00.csv")])
    d = c.folder("output/predict-name-too-long")
    c.add("output/predict-name-too-long", [*c.predict(d)[:-1], str(d / ("p" * 300 + ".csv"))])
    d = c.folder("output/explain-into-data-folder")
    _manifest_with(d, c.base)
    rows = _rows()
    (d / "images").mkdir()
    for r in rows:
        shutil.copy(d / r["image"], d / "images" / f"{r['id']}.png")
        r["image"] = f"images/{r['id']}.png"
    pd.DataFrame(rows).to_csv(d / "m.csv", index=False)
    c.add("output/explain-into-data-folder", ["--quiet", "explain", "--model", str(c.base / "model"), "--manifest",
                                              str(d / "m.csv"), "--out", str(d), "--device", "cpu"], fragment="input of this run")
    for flag in ("--junit", "--summary", "--json"):
        d = c.folder(f"output/gate{flag}-onto-results")
        shutil.copy(results, d / "results.json")
        c.add(f"output/gate{flag}-onto-results", c.gate(d / "results.json", "default", flag, str(d / "results.json")),
              fragment="input of this run")
    d = c.folder("output/gate-summary-onto-policy")
    shutil.copy(results, d / "results.json")
    from importlib import resources
    (d / "policy.yaml").write_bytes(resources.files("auditkit").joinpath("policies", "default.yaml").read_bytes())
    c.add("output/gate-summary-onto-policy", c.gate(d / "results.json", str(d / "policy.yaml"), "--summary", str(d / "policy.yaml")))
    d = c.folder("output/gate-junit-under-a-file")
    (d / "file").write_text("x")
    c.add("output/gate-junit-under-a-file", c.gate(None, "default", "--junit", str(d / "file" / "j.xml")))
    d = c.folder("output/report-onto-results")
    shutil.copy(results, d / "results.json")
    c.add("output/report-onto-results", ["--quiet", "report", str(d / "results.json"), "--out", str(d / "results.json"), "--force"])
    d = c.folder("output/report-existing-without-force")
    shutil.copy(results, d / "results.json")
    (d / "report.pdf").write_text("earlier report")
    c.add("output/report-existing-without-force", ["--quiet", "report", str(d / "results.json")])
    d = c.folder("output/audit-out-is-a-file")
    (d / "out").write_text("x")
    c.add("output/audit-out-is-a-file", c.audit(d))
    d = c.folder("output/audit-out-under-proc")
    c.add("output/audit-out-under-proc", [*c.audit(d)[:5], "/proc/auditkit-audit", *c.audit(d)[6:]])
    d = c.folder("output/audit-existing-without-force")
    shutil.copytree(c.base / "audit", d / "out")
    c.add("output/audit-existing-without-force", c.audit(d), fragment="--force")
    d = c.folder("output/audit-force-invalid-input")
    shutil.copytree(c.base / "audit", d / "out")
    (d / "bad.csv").write_text("id,y_true,score\na,1,7\n")
    c.add("output/audit-force-invalid-input", c.audit(d, d / "bad.csv", "--force"))
    d = c.folder("output/audit-onto-predictions")
    (d / "out").mkdir()
    shutil.copy(c.base / "preds.csv", d / "out" / "predictions.parquet")
    c.add("output/audit-onto-predictions", c.audit(d, d / "out" / "predictions.parquet", "--force"))
    d = c.folder("output/synth-non-empty")
    (d / "out-s").mkdir()
    (d / "out-s" / "keep.txt").write_text("mine")
    c.add("output/synth-non-empty", ["--quiet", "synth", "--out", str(d / "out-s"), "--n", "20", "--size", "32"])
    d = c.folder("output/train-out-is-a-file")
    (d / "out").write_text("x")
    c.add("output/train-out-is-a-file", ["--quiet", "train", "--manifest", str(c.base / "manifest.csv"), "--arch", "smallcnn",
                                         "--out", str(d / "out"), "--epochs", "0"])


def env_cases(c: Corpus) -> None:
    for name, value in {"overflow": "9" * 30, "text": "yesterday", "negative-huge": "-" + "9" * 20, "float": "1.5e300"}.items():
        d = c.folder(f"env/source-date-epoch-{name}")
        c.add(f"env/source-date-epoch-{name}", c.audit(d, None, "--operating-point", "threshold:0.5"),
              env={"SOURCE_DATE_EPOCH": value}, fragment="SOURCE_DATE_EPOCH")


FAMILIES = (manifest_cases, image_cases, npy_cases, dicom_cases, mask_cases, predictions_cases,
            embeddings_cases, config_cases, policy_cases, results_cases, checkpoint_cases, cli_cases,
            output_cases, env_cases)


def build_corpus(root: str | os.PathLike[str]) -> list[Case]:
    """Write every case's files under ``root`` (shared valid inputs in ``root/base``) and return the cases."""
    from auditkit.progress import is_quiet, set_quiet

    root = Path(root)
    base = root / "base"
    build_base(base)
    was_quiet = is_quiet()
    set_quiet(True)
    try:
        build_results(base)
    finally:
        set_quiet(was_quiet)  # the tests run after this one see their own setting
    corpus = Corpus(root, base)
    for family in FAMILIES:
        family(corpus)
    return corpus.cases


def main(argv: list[str]) -> int:
    """Write the corpus into the folder ``argv[0]`` with its ``cases.json``; return the exit code."""
    if len(argv) != 1:
        print("usage: python tests/corpus/generate.py DIR", file=sys.stderr)
        return 2
    cases = build_corpus(argv[0])
    (Path(argv[0]) / "cases.json").write_text(json.dumps([asdict(case) for case in cases], indent=1))
    print(f"{len(cases)} cases in {argv[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
