"""Sets made by other tools, read into a ``SyntheticSet`` so synthset can evaluate, report
and compare them.

Formats (``detect_format``):

- ``pt``: the ``.pt`` file of the official DC / DSA / DM / DataDAM / MTT code,
  ``torch.save({'data': [[images, labels], ...], 'accs_all_exps': ...})``, one
  ``[images, labels]`` pair per experiment, images normalised with the dataset's mean/std.
  Read with ``torch.load(weights_only=True)``: tensors, lists, dicts and numbers only, so a
  file that would run code when unpickled is refused and nothing in it runs.
- ``dcbench``: DC-Bench's folder of one set (``distilled_results/<METHOD>/<DATASET>/IPC<k>/``),
  holding a ``res_*.pt`` file in the layout above, or MTT's ``images_best.pt`` +
  ``labels_best.pt`` tensors.
- ``imagefolder``: ``PATH/<class>/*.png`` (class folders named by the dataset's class names or
  by their index), 8-bit pixels, normalised here (``synthset export --format png`` writes it).
- ``npz``: ``numpy.savez`` with ``images`` (or ``x``) and ``labels`` (or ``y``); uint8 arrays
  are pixels (normalised here), float arrays must already be normalised like the ``.pt``
  files. Read with ``allow_pickle=False``.

Float images are checked against the dataset: their shape must be the dataset's (at the
loaded ``--image-size``), and their statistics must look normalised. A set saved as [0, 1]
or [0, 255] pixels is refused with a message saying so, because a model trained on it would
be tested on differently scaled images.
"""
from __future__ import annotations

import hashlib
import pickle
import re
import zipfile
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .data.base import DataError, DatasetInfo, normalize
from .synthetic import META, TENSORS, SyntheticSet

FORMATS = ("synthset", "pt", "dcbench", "imagefolder", "npz")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def detect_format(path: Path) -> str:
    """Which of ``FORMATS`` the file or folder ``path`` is; DataError when none."""
    if not path.exists():
        raise DataError(f"{path} does not exist; give a synthset run directory, a .pt / .npz "
                        f"file, a DC-Bench set folder or an ImageFolder of PNGs")
    if path.is_file():
        if path.suffix in (".pt", ".pth"):
            return "pt"
        if path.suffix == ".npz":
            return "npz"
        raise DataError(f"{path}: unknown set file type {path.suffix!r}; synthset reads .pt "
                        f"(the official DC/DSA/DM/DataDAM/MTT layout) and .npz files")
    if (path / TENSORS).exists() and (path / META).exists():
        return "synthset"
    if any(path.glob("res_*.pt")) or (path / "images_best.pt").exists():
        return "dcbench"
    if any(d.is_dir() for d in path.iterdir()):
        return "imagefolder"
    raise DataError(f"{path} is a folder without a synthset set, a DC-Bench set (res_*.pt or "
                    f"images_best.pt + labels_best.pt) or class sub-folders of images")


def imported_dir(path: Path) -> Path:
    """Where an imported set and its evaluations live: ``PATH.synthset`` beside the source."""
    return path.with_name(path.name + ".synthset")


def resolve_run_dir(path: str | Path) -> Path:
    """A run directory for ``path``: itself, or the folder ``synthset evaluate`` imported a
    foreign set into (reports and comparisons read that)."""
    path = Path(path)
    if path.is_dir() and any((path / f).exists() for f in (META, "eval.json", "eval_runs.jsonl")):
        return path
    if imported_dir(path).is_dir():
        return imported_dir(path)
    raise DataError(f"{path} is not a run directory and has not been evaluated; run "
                    f"`synthset evaluate {path} --dataset D` first")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(f.read_bytes())
    return h.hexdigest()


def load_foreign(path: str | Path, info: DatasetInfo, *, index: int = 0) -> SyntheticSet:
    """The set at ``path`` (any of ``FORMATS`` but ``synthset``) for the dataset ``info``
    (the test split's: channels, size, classes, mean/std). ``index``: which ``[images,
    labels]`` pair of an official ``.pt`` file (one per experiment)."""
    path = Path(path)
    fmt = detect_format(path)
    if fmt == "synthset":
        return SyntheticSet.load(path)
    if fmt == "pt":
        images, labels, count = _official(_torch_load(path), path, index)
    elif fmt == "dcbench":
        images, labels, count = _dcbench(path, index)
    elif fmt == "imagefolder":
        (images, labels), count = _imagefolder(path, info), 1
    else:
        images, labels, count = (*_npz(path, info), 1)
    images = _as_nchw(images, info, path)
    labels = _labels(labels, len(images), info, path)
    check_normalised(images, info, path)
    source = {"path": str(path.resolve()), "format": fmt, "sha256": sha256(path),
              "index": index if count > 1 else 0, "pairs_in_file": count}
    return SyntheticSet(images=images, labels=labels, info=info,
                        metadata={"method": f"imported:{fmt}", "ipc": int(torch.bincount(labels).max()),
                                  "source": source})


def _torch_load(path: Path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL (\S+) was not an allowed global", str(e))
        if found is None:
            raise DataError(f"{path} is not a readable torch file (corrupt, truncated or another "
                            f"format); re-save it with torch.save") from None
        raise DataError(
            f"{path} holds a Python object ({found.group(1)}) besides tensors, lists and dicts; "
            f"synthset refuses to unpickle it (unpickling can run code; nothing in the file was "
            f"run). Re-save the set as tensors: torch.save({{'data': [[images, labels]]}}, path)"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{path} is not a readable torch file ({e}); is it truncated?") from None


def _official(obj, path: Path, index: int):
    if isinstance(obj, dict) and "data" in obj:
        pairs = obj["data"]
        if not isinstance(pairs, (list, tuple)) or not pairs:
            raise DataError(f"{path}: 'data' must be a list of [images, labels] pairs")
        if not 0 <= index < len(pairs):
            raise DataError(f"{path} holds {len(pairs)} [images, labels] pair(s) (one per "
                            f"experiment); --set-index {index} is out of range")
        pair = pairs[index]
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise DataError(f"{path}: data[{index}] must be [images, labels]")
        return pair[0], pair[1], len(pairs)
    if isinstance(obj, dict) and {"images", "labels"} <= set(obj):
        return obj["images"], obj["labels"], 1
    keys = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
    raise DataError(f"{path}: expected the official layout {{'data': [[images, labels], ...]}}, "
                    f"found {keys}")


def _dcbench(path: Path, index: int):
    res = sorted(path.glob("res_*.pt"))
    if res:
        return _official(_torch_load(res[0]), res[0], index)
    labels = path / "labels_best.pt"
    if not labels.exists():
        raise DataError(f"{path} has images_best.pt but no labels_best.pt (MTT's pair)")
    return _torch_load(path / "images_best.pt"), _torch_load(labels), 1


def _npz(path: Path, info: DatasetInfo):
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            ik = next((k for k in ("images", "x", "data") if k in keys), None)
            lk = next((k for k in ("labels", "y", "targets") if k in keys), None)
            if ik is None or lk is None:
                raise DataError(f"{path}: expected arrays 'images' and 'labels' (or 'x' and "
                                f"'y'), found {sorted(keys)}")
            images, labels = z[ik], z[lk]
    except ValueError as e:  # object arrays need pickle
        raise DataError(f"{path} holds object arrays, which synthset refuses to unpickle; "
                        f"save plain numeric arrays ({e})") from None
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise DataError(f"{path} is not a readable .npz file ({e})") from None
    if images.dtype == np.uint8:
        x = _as_nchw(torch.from_numpy(images.copy()), info, path)
        return normalize(x, info.mean, info.std), torch.from_numpy(labels.copy())
    return torch.from_numpy(np.asarray(images, dtype=np.float32)), torch.from_numpy(labels.copy())


def _imagefolder(path: Path, info: DatasetInfo):
    names = {n: k for k, n in enumerate(info.class_names)}
    names.update({str(k): k for k in range(info.num_classes)})
    images, labels = [], []
    for d in sorted(p for p in path.iterdir() if p.is_dir()):
        if d.name not in names:
            raise DataError(f"{path}: class folder {d.name!r} is neither a class of "
                            f"{info.name} ({', '.join(info.class_names)}) nor a class index")
        for f in sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            try:
                with Image.open(f) as im:
                    im = im.convert("L" if info.channels == 1 else "RGB")
                    a = np.asarray(im, dtype=np.uint8)
            except (UnidentifiedImageError, OSError) as e:
                raise DataError(f"{f} is not a readable image ({e})") from None
            if a.shape[:2] != tuple(info.size):
                raise DataError(f"{f} is {a.shape[1]}x{a.shape[0]} px but {info.name} is loaded "
                                f"at {info.size[1]}x{info.size[0]}; pass --image-size "
                                f"{a.shape[0]} or resize the set")
            images.append(torch.from_numpy(a.copy()).reshape(*a.shape[:2], -1).permute(2, 0, 1))
            labels.append(names[d.name])
    if not images:
        raise DataError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in its class folders")
    return normalize(torch.stack(images), info.mean, info.std), torch.tensor(labels)


def _as_nchw(x, info: DatasetInfo, path: Path) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise DataError(f"{path}: images must be a tensor, found {type(x).__name__}")
    if x.dim() == 3 and info.channels == 1:
        x = x.unsqueeze(1)
    if x.dim() == 4 and x.shape[1] != info.channels and x.shape[-1] == info.channels:
        x = x.permute(0, 3, 1, 2)  # NHWC, as numpy code often saves
    want = (info.channels, *info.size)
    if x.dim() != 4 or tuple(x.shape[1:]) != want:
        got = "x".join(map(str, x.shape[1:])) if x.dim() == 4 else str(tuple(x.shape))
        hint = (f"; pass --image-size {x.shape[-1]} if the set was made at that size"
                if x.dim() == 4 and x.shape[1] == info.channels and x.shape[-1] != info.size[1]
                else "")
        raise DataError(f"{path}: the set's images are {got}, but {info.name} is loaded at "
                        f"{'x'.join(map(str, want))}{hint}")
    if x.shape[0] == 0:
        raise DataError(f"{path}: the set holds no images (an empty experiment?); choose another "
                        f"with --set-index or re-export the set")
    return x.contiguous() if x.dtype == torch.uint8 else x.float().contiguous()


def _labels(y, n: int, info: DatasetInfo, path: Path) -> torch.Tensor:
    if not isinstance(y, torch.Tensor):
        raise DataError(f"{path}: labels must be a tensor, found {type(y).__name__}")
    if y.dim() == 2:
        raise DataError(f"{path}: labels are {tuple(y.shape)} (soft labels); synthset evaluates "
                        f"sets with one class index per image")
    if y.dtype.is_floating_point:
        if not torch.equal(y, y.round()):
            raise DataError(f"{path}: labels must be class indices, found fractional values")
    y = y.to(torch.int64).flatten()
    if len(y) != n:
        raise DataError(f"{path}: {n} images but {len(y)} labels")
    if len(y) and (y.min() < 0 or y.max() >= info.num_classes):
        raise DataError(f"{path}: labels must be in 0..{info.num_classes - 1} for {info.name}, "
                        f"found {int(y.min())}..{int(y.max())}")
    return y


def check_normalised(images: torch.Tensor, info: DatasetInfo, path: Optional[Path] = None) -> None:
    """Refuse float images whose statistics show they were not normalised with the dataset's
    mean/std: pixels in [0, 1] or [0, 255], or a per-channel mean/std far from a normalised
    image's (|mean| <= 3, 0.05 <= std <= 10; the real data are 0 and 1)."""
    where = f"{path}: " if path else ""
    x = images.float()
    if not torch.isfinite(x).all():
        raise DataError(f"{where}the set holds NaN or infinite pixels")
    mean = ", ".join(f"{m:g}" for m in info.mean)
    std = ", ".join(f"{s:g}" for s in info.std)
    fix = (f"normalise the images with {info.name}'s mean ({mean}) and std ({std}), "
           f"(x - mean) / std, or save them as 8-bit PNGs or a uint8 .npz, which synthset "
           f"normalises itself")
    lo, hi = float(x.min()), float(x.max())
    if lo >= 0.0 and hi <= 1.0:
        raise DataError(f"{where}the images lie in [{lo:.3g}, {hi:.3g}]: they look like pixel "
                        f"values in [0, 1], saved unnormalised; {fix}")
    if lo >= 0.0 and hi > 20.0:
        raise DataError(f"{where}the images lie in [{lo:.3g}, {hi:.3g}]: they look like pixel "
                        f"values in [0, 255], saved unnormalised; {fix}")
    per = x.transpose(0, 1).reshape(x.shape[1], -1)
    m, s = per.mean(1), per.std(1)
    if (m.abs() > 3).any() or (s < 0.05).any() or (s > 10).any():
        raise DataError(f"{where}per-channel mean {[round(v, 3) for v in m.tolist()]} and std "
                        f"{[round(v, 3) for v in s.tolist()]} are not those of normalised "
                        f"images (about 0 and 1); {fix}")
