"""MHIST (Wei et al., 2021): colorectal polyp histology, HP (0) vs SSA (1).

MHIST cannot be downloaded programmatically (its owners require a data-use form), so
the user points ``--data-root`` at a folder holding ``mhist/annotations.csv`` and
``mhist/images/``. Images are found by stem with any common extension. Decoded
(and resized) tensors are cached, keyed by a hash of the inputs and the size.
"""
from __future__ import annotations

import csv
import hashlib
import json
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..atomic import WriteError, write_safetensors
from ..config import DataConfig
from .base import DataError, DatasetInfo, ImageData
from .download import cache_dir, data_root, md5_of
from .spec import DatasetSpec, register_dataset

ANNOTATIONS_MD5 = "4f4a2c2b621c4caa16635273c9b383f5"
# The same content with LF line endings, as some copies of the dataset carry it.
ANNOTATIONS_MD5_LF = "5592db562989a2051e3de0403353d249"
COLUMNS = ("Image Name", "Majority Vote Label",
           "Number of Annotators who Selected SSA (Out of 7)", "Partition")
CLASSES = ("HP", "SSA")
NUM_IMAGES = 3152
NATIVE = 224
EXTENSIONS = (".png", ".webp", ".jpg", ".jpeg", ".tif", ".tiff")
MEAN = (0.7394, 0.6527, 0.7774)
STD = (0.1964, 0.2424, 0.1694)
CACHE_VERSION = 1


@dataclass(frozen=True)
class Row:
    name: str
    label: int
    ssa_votes: int
    split: str


def folder(root: Path) -> Path:
    return Path(root) / "mhist"


def parse_annotations(path: Path, *, check_md5: bool = True) -> list[Row]:
    """Read and validate annotations.csv; errors name the file, row and problem."""
    if not path.exists():
        raise DataError(f"MHIST annotations not found at {path}. MHIST needs its data-use "
                        f"form: put the official annotations.csv and images/ under "
                        f"{path.parent} and pass --data-root {path.parent.parent}.")
    if check_md5:
        got = md5_of(path)
        if got != ANNOTATIONS_MD5 and hashlib.md5(
                path.read_bytes().replace(b"\r\n", b"\n")).hexdigest() != ANNOTATIONS_MD5_LF:
            raise DataError(f"{path}: checksum mismatch (md5 {got}, expected {ANNOTATIONS_MD5}). "
                            f"This is not the official MHIST annotations.csv; restore the "
                            f"original file from the MHIST download (or pass --no-verify to use a "
                            f"modified file at your own risk).")
    rows: list[Row] = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != COLUMNS:
            raise DataError(f"{path}: header {header} is not the MHIST header {list(COLUMNS)}")
        for lineno, rec in enumerate(reader, start=2):
            if not rec:
                continue
            if len(rec) != 4:
                raise DataError(f"{path}, line {lineno}: expected 4 columns, found {len(rec)}: {rec}")
            name, label, votes, split = (r.strip() for r in rec)
            if label not in CLASSES:
                raise DataError(f"{path}, line {lineno}: label {label!r} is not HP or SSA")
            if split not in ("train", "test"):
                raise DataError(f"{path}, line {lineno}: partition {split!r} is not train or test")
            if not votes.isdigit() or not 0 <= int(votes) <= 7:
                raise DataError(f"{path}, line {lineno}: SSA vote count {votes!r} is not 0..7")
            rows.append(Row(name=name, label=CLASSES.index(label), ssa_votes=int(votes), split=split))
    return rows


def find_image(images_dir: Path, name: str) -> Path:
    stem = Path(name).stem
    for ext in EXTENSIONS:
        p = images_dir / (stem + ext)
        if p.exists():
            return p
    raise DataError(f"MHIST image {name} not found in {images_dir} (looked for {stem} with "
                    f"extensions {', '.join(EXTENSIONS)}). Restore the missing file from "
                    f"the MHIST download.")


def decode(path: Path, size: int) -> np.ndarray:
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.size != (size, size):
                im = im.resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1).copy()
    except OSError as e:
        raise DataError(f"{path}: cannot decode image ({e}); the file is corrupt.") from e


def _cache_key(rows: list[Row], paths: list[Path], ann_md5: str, size: int) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"v": CACHE_VERSION, "size": size, "ann": ann_md5}).encode())
    for row, p in zip(rows, paths):
        st = p.stat()
        h.update(f"{row.name}|{p.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def load_all(root: Path, size: int, *, check_md5: bool = True, use_cache: bool = True,
             workers: int = 4) -> tuple[list[Row], torch.Tensor]:
    """All annotated images as uint8 ``(3152, 3, size, size)``, decoded once and cached."""
    base = folder(root)
    ann = base / "annotations.csv"
    rows = parse_annotations(ann, check_md5=check_md5)
    if check_md5 and len(rows) != NUM_IMAGES:
        raise DataError(f"{ann}: {len(rows)} rows, expected {NUM_IMAGES}")
    paths = [find_image(base / "images", r.name) for r in rows]
    key = _cache_key(rows, paths, md5_of(ann), size)
    cache = cache_dir() / "decoded" / f"mhist-{size}-{key}.safetensors"
    if use_cache and cache.exists():
        from safetensors.torch import load_file
        try:
            return rows, load_file(str(cache))["images"]
        except Exception:  # a corrupt cache is rebuilt, never trusted
            cache.unlink(missing_ok=True)
    with ThreadPoolExecutor(max_workers=workers) as pool:  # PIL decodes without the GIL
        arrays = list(pool.map(lambda p: decode(p, size), paths))
    images = torch.from_numpy(np.stack(arrays))
    if use_cache:
        try:
            write_safetensors(cache, {"images": images})
        except WriteError as e:  # the cache saves time only: go on without it
            warnings.warn(f"MHIST decode cache not saved ({e})", RuntimeWarning, stacklevel=2)
    return rows, images


def info(size: int = NATIVE) -> DatasetInfo:
    return DatasetInfo(name="mhist", channels=3, size=(size, size), class_names=CLASSES,
                       mean=MEAN, std=STD)


def load(config: DataConfig, split: str) -> ImageData:
    size = config.image_size or NATIVE
    rows, images = load_all(data_root(config.root), size, check_md5=config.verify)
    keep = torch.tensor([r.split == split for r in rows])
    labels = torch.tensor([r.label for r in rows], dtype=torch.int64)
    return ImageData(images=images[keep].contiguous(), labels=labels[keep], info=info(size))


@register_dataset("mhist")
class MhistSpec(DatasetSpec):
    majority = 100 * 617 / 977  # test split: 617 HP, 360 SSA
    where = ("needs <root>/mhist/annotations.csv + images/ (a data-use form); "
             "--image-size to resize")
    citation = ("Wei et al., A petri dish for histopathology image analysis, AIME 2021 (MHIST)")

    def info(self, config=None):
        return info(config.image_size if config is not None and config.image_size else NATIVE)

    def present(self, root: Path) -> bool:
        return (folder(root) / "annotations.csv").exists()

    def fake(self, root: Path) -> DataConfig:
        """16 noise PNGs (12 train, 4 test, HP and SSA alternating) and their annotations.csv,
        loaded at 16 px without checksums."""
        d = root / "mhist"
        (d / "images").mkdir(parents=True)
        rng = np.random.default_rng(0)
        rows = ["Image Name,Majority Vote Label,Number of Annotators who Selected SSA (Out of 7),Partition"]
        for i in range(16):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(d / "images" / f"M{i}.png")
            rows.append(f"M{i}.png,{'HP' if i % 2 else 'SSA'},{i % 7},{'train' if i < 12 else 'test'}")
        (d / "annotations.csv").write_text("\n".join(rows) + "\n")
        return DataConfig(name="mhist", root=str(root), image_size=16, verify=False)

    def load(self, config: DataConfig, split: str) -> ImageData:
        return load(config, split)
