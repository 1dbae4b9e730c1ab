"""Any ImageFolder-style tree: ``PATH/<class>/*.png`` (or ``PATH/train/<class>``,
``PATH/test/<class>``). Without a test folder, a seeded 20% of each class is held out."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..config import DataConfig
from .base import DataError, DatasetInfo, ImageData
from .spec import DatasetSpec, register_dataset

EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
HOLDOUT = 0.2
SPLIT_SEED = 0


def _class_dirs(path: Path) -> list[Path]:
    dirs = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not dirs:
        raise DataError(f"{path}: no class sub-folders; expected PATH/<class>/<image files>")
    return dirs


def _check_layout(path: Path, class_dirs: list[Path]) -> None:
    """Name the layout mistakes a user makes: a split folder without its partner, a single
    class, class folders nested one level too deep."""
    for have, lack in (("train", "test"), ("test", "train")):
        if (path / have).is_dir() and not (path / lack).is_dir() and any(
                p.is_dir() for p in (path / have).iterdir()):
            raise DataError(f"{path}: has {have}/ but no {lack}/; give both PATH/train/<class> and "
                            f"PATH/test/<class>, or put the class folders directly in PATH (a "
                            f"seeded {HOLDOUT:.0%} of each class is then held out for testing)")
    if len(class_dirs) < 2:
        raise DataError(f"{path}: found one class folder ({class_dirs[0].name}); a classification "
                        f"set needs at least two: PATH/<class>/<image files>, one folder per class")
    for d in class_dirs:
        if not _files(d) and any(p.is_dir() for p in d.iterdir()):
            inner = next(p for p in d.iterdir() if p.is_dir())
            raise DataError(f"{d}: holds folders ({inner.name}/...), not images; class folders "
                            f"must hold their image files directly (PATH/<class>/<image files>)")


def _files(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.suffix.lower() in EXTENSIONS)


def _decode(path: Path, mode: str, size: tuple[int, int]) -> np.ndarray:
    try:
        with Image.open(path) as im:
            im = im.convert(mode)
            if im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            a = np.asarray(im, dtype=np.uint8)
    except OSError as e:
        raise DataError(f"{path}: cannot decode image ({e})") from e
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def load(config: DataConfig, split: str) -> ImageData:
    if not config.path:
        raise ValueError("the folder dataset needs a path: --data-path PATH/<class>/<images>")
    path = Path(config.path).expanduser()
    if not path.is_dir():
        raise DataError(f"{path}: no such folder")
    has_split = (path / "train").is_dir() and (path / "test").is_dir()
    base = path / split if has_split else path
    class_dirs = _class_dirs(path / "train" if has_split else path)
    _check_layout(path, class_dirs)
    class_names = [d.name for d in class_dirs]
    per_class = []
    for d in class_names:
        files = _files(base / d)
        if not files:
            raise DataError(f"{base / d}: class folder holds no images")
        if not has_split:
            order = np.random.default_rng(SPLIT_SEED).permutation(len(files))
            n_test = max(1, int(round(HOLDOUT * len(files)))) if len(files) > 1 else 0
            chosen = order[:n_test] if split == "test" else order[n_test:]
            files = [files[i] for i in sorted(chosen)]
        per_class.append(files)
    first = next(f for fs in per_class for f in fs)
    with Image.open(first) as im:
        mode = "L" if im.mode in ("L", "1", "I", "I;16") else "RGB"
        native = (im.size[1], im.size[0])
    size = (config.image_size, config.image_size) if config.image_size else native
    images, labels = [], []
    for c, files in enumerate(per_class):
        for f in files:
            images.append(_decode(f, mode, size))
            labels.append(c)
    x = torch.from_numpy(np.stack(images))
    # Normalisation statistics from the training split only (no test leakage).
    stats_x = x if split == "train" else load(config, "train").images
    f = stats_x.float() / 255.0
    mean = tuple(f.mean(dim=(0, 2, 3)).tolist())
    std = tuple(max(s, 1e-3) for s in f.std(dim=(0, 2, 3)).tolist())
    info = DatasetInfo(name="folder", channels=x.shape[1], size=size,
                       class_names=tuple(class_names), mean=mean, std=std)
    return ImageData(images=x, labels=torch.tensor(labels, dtype=torch.int64), info=info)


@register_dataset("folder")
class FolderSpec(DatasetSpec):
    where = ("any ImageFolder tree given with --data-path (mean/std from its training split)")

    def present(self, root: Path) -> bool:
        return False  # it lives at --data-path, not under the data root

    def fake(self, root: Path) -> DataConfig:
        """Two classes of eight 16 px grey noise PNGs under ``root/folder``."""
        rng = np.random.default_rng(0)
        for c in ("a", "b"):
            (root / "folder" / c).mkdir(parents=True)
            for i in range(8):
                Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(
                    root / "folder" / c / f"{i}.png")
        return DataConfig(name="folder", path=str(root / "folder"))

    def load(self, config: DataConfig, split: str) -> ImageData:
        return load(config, split)
