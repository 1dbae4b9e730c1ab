"""MedMNIST (Yang et al., Scientific Data 2023): standardised biomedical image sets, one
``.npz`` per set and size under ``<root>/medmnist/`` (``pathmnist.npz`` at 28 px,
``pathmnist_64.npz`` / ``_128`` / ``_224`` for the larger sizes of MedMNIST+).

Each file holds ``train_images``, ``train_labels``, ``val_images``, ``val_labels``,
``test_images`` and ``test_labels`` (uint8 images ``(N, H, W)`` or ``(N, H, W, 3)``, labels
``(N, 1)``); it is read with ``allow_pickle=False``, so nothing in it can run. URLs and MD5s
are those of the ``medmnist`` package's ``INFO`` table (medmnist/info.py, version 3.0.2,
commit 3bb56be of github.com/MedMNIST/MedMNIST; Zenodo record 10519652). MedMNIST's own
validation split is ours: the training split here is its train + val, and ``--holdout-val``
removes exactly its val images. MedMNIST publishes no mean/std; they are measured on the
training images (train + val) at load. Distillation papers report no MedMNIST rows, so no
reference rows are printed.
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..config import DataConfig
from .base import DataError, DatasetInfo, ImageData
from .download import data_root, download_url, md5_of
from .spec import DatasetSpec, register_dataset

SIZES = (28, 64, 128, 224)
KEYS = ("train_images", "train_labels", "val_images", "val_labels", "test_images", "test_labels")
ZENODO = "https://zenodo.org/records/10519652/files/"


def file_name(name: str, size: int) -> str:
    return f"{name}.npz" if size == 28 else f"{name}_{size}.npz"


def _read(path: Path, keys: tuple[str, ...] = KEYS) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in KEYS if k not in z.files]
            if missing:
                raise DataError(f"{path}: no {', '.join(missing)}; not a MedMNIST file "
                                f"(keys: {', '.join(z.files)})")
            return {k: z[k] for k in keys}  # only these are decompressed
    except ValueError as e:  # an object array: a pickle inside, refused
        raise DataError(f"{path}: holds pickled objects, which synthset never loads ({e})") from e
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: cannot be read ({e}); the file is truncated or corrupt. "
                        f"Delete it and download it again.") from e


def _images(a: np.ndarray, where: str) -> torch.Tensor:
    if a.dtype != np.uint8 or a.ndim not in (3, 4) or (a.ndim == 4 and a.shape[-1] != 3):
        raise DataError(f"{where}: images of shape {a.shape} ({a.dtype}); expected uint8 "
                        f"(N, H, W) or (N, H, W, 3)")
    t = torch.from_numpy(np.ascontiguousarray(a))
    return t.unsqueeze(1) if a.ndim == 3 else t.permute(0, 3, 1, 2).contiguous()


class _MedMnistSpec(DatasetSpec):
    """One MedMNIST set: its classes, channels and the published MD5 per size."""

    classes: tuple[str, ...]
    channels: int
    md5: dict[int, str]
    eval_without: tuple[str, ...] = ()

    def _path(self, root: Path, size: int) -> Path:
        return Path(root) / "medmnist" / file_name(self.name, size)

    @property
    def where(self) -> str:
        return (f"downloaded on first use from Zenodo (MD5-checked); offline: put "
                f"{file_name(self.name, 28)} (or _64/_128/_224) in <root>/medmnist/")

    def info(self, config=None):
        size = config.image_size if config is not None and config.image_size else 28
        return DatasetInfo(name=self.name, channels=self.channels, size=(size, size),
                           class_names=self.classes, mean=(), std=())

    def present(self, root: Path) -> bool:
        return any(self._path(root, s).exists() for s in SIZES)

    def ensure(self, config: DataConfig) -> Path:
        size = config.image_size or 28
        if size not in SIZES:
            raise ValueError(f"{self.name} is published at {', '.join(map(str, SIZES))} px; "
                             f"--image-size {size} is not one of them")
        path = self._path(data_root(config.root), size)
        url = ZENODO + file_name(self.name, size)
        if not path.exists():
            if not config.download:
                raise DataError(f"{path} not found and download is off; fetch {url} into "
                                f"{path.parent}, or allow download")
            try:
                download_url(url + "?download=1", path, md5=self.md5[size])
            except OSError as e:
                raise DataError(f"could not download {url} ({e}). Without a network, fetch it "
                                f"on another machine, put it in {path.parent} and pass "
                                f"--no-download.") from e
        if config.verify and (got := md5_of(path)) != self.md5[size]:
            raise DataError(f"{path}: checksum mismatch (md5 {got}, expected {self.md5[size]}). "
                            f"The file is corrupt or not MedMNIST's: delete it and run again to "
                            f"re-download (or pass --no-verify for a modified copy).")
        return path

    def load(self, config: DataConfig, split: str) -> ImageData:
        path = self.ensure(config)
        parts = ("train", "val") if split == "train" else ("test",)
        z = _read(path, tuple({f"{p}_{k}" for p in parts for k in ("images", "labels")}
                              | {"train_images", "val_images"}))  # the latter for mean/std
        images = torch.cat([_images(z[f"{p}_images"], f"{path}:{p}_images") for p in parts])
        labels = torch.from_numpy(np.concatenate([z[f"{p}_labels"].reshape(-1) for p in parts])
                                  .astype(np.int64))
        if len(labels) != len(images):
            raise DataError(f"{path}: {len(images)} {split} images but {len(labels)} labels")
        if images.shape[1] != self.channels or (len(labels) and (
                int(labels.min()) < 0 or int(labels.max()) >= len(self.classes))):
            raise DataError(f"{path}: {images.shape[1]} channels or labels outside "
                            f"0..{len(self.classes) - 1}; not {self.name}")
        mean, std = self._stats(z, path)
        size = images.shape[-1]
        info = DatasetInfo(name=self.name, channels=self.channels, size=(size, size),
                           class_names=self.classes, mean=mean, std=std)
        return ImageData(images=images, labels=labels, info=info)

    def _stats(self, z: dict, path: Path) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std of the training images (train + val), from at most
        10,000 of them evenly spaced (the 224 px sets are gigabytes)."""
        x = np.concatenate([z["train_images"], z["val_images"]])
        x = x[:: max(1, len(x) // 10000)].astype(np.float64) / 255
        axes = tuple(range(x.ndim - 1)) if x.ndim == 4 else None
        mean, std = x.mean(axis=axes), x.std(axis=axes)
        return tuple(np.atleast_1d(mean).tolist()), tuple(np.maximum(np.atleast_1d(std), 1e-3).tolist())

    def val_indices(self, train: ImageData, seed: int, config: Optional[DataConfig] = None):
        """MedMNIST's own validation images: the tail of the training split (its val part);
        the seed plays no part."""
        if config is None:
            raise ValueError(f"{self.name}'s validation split is MedMNIST's own: give the "
                             f"DataConfig the training split was loaded with")
        # the file load() verified: not hashed again
        with np.load(self._path(data_root(config.root), config.image_size or 28),
                     allow_pickle=False) as z:
            n_val = len(z["val_labels"])
        return torch.arange(len(train) - n_val, len(train))

    def val_description(self) -> str:
        return "MedMNIST's own validation split"

    def fake(self, root: Path) -> DataConfig:
        """A tiny .npz in MedMNIST's layout: 4 train, 1 val and 2 test images per class."""
        rng = np.random.default_rng(0)
        shape = (28, 28) if self.channels == 1 else (28, 28, 3)
        arrays = {}
        for part, k in (("train", 4), ("val", 1), ("test", 2)):
            labels = np.repeat(np.arange(len(self.classes)), k)
            arrays[f"{part}_images"] = rng.integers(0, 256, (len(labels), *shape), dtype=np.uint8)
            arrays[f"{part}_labels"] = labels.reshape(-1, 1).astype(np.uint8)
        path = self._path(root, 28)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **arrays)
        return DataConfig(name=self.name, root=str(root), download=False, verify=False)


# MD5s per size: medmnist/info.py (version 3.0.2, commit 3bb56be), keys MD5, MD5_64, MD5_128, MD5_224
@register_dataset("pathmnist")
class PathMnist(_MedMnistSpec):
    """Colon pathology (NCT-CRC-HE-100K; test CRC-VAL-HE-7K), 9 tissue types."""
    classes = ("adipose", "background", "debris", "lymphocytes", "mucus", "smooth muscle",
               "normal colon mucosa", "cancer-associated stroma",
               "colorectal adenocarcinoma epithelium")
    channels = 3
    md5 = {28: "a8b06965200029087d5bd730944a56c1", 64: "55aa9c1e0525abe5a6b9d8343a507616",
           128: "ac42d08fb904d92c244187169d1fd1d9", 224: "2c51a510bcdc9cf8ddb2af93af1eadec"}


@register_dataset("bloodmnist")
class BloodMnist(_MedMnistSpec):
    """Blood cell microscopy, 8 cell types."""
    classes = ("basophil", "eosinophil", "erythroblast",
               "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)",
               "lymphocyte", "monocyte", "neutrophil", "platelet")
    channels = 3
    md5 = {28: "7053d0359d879ad8a5505303e11de1dc", 64: "2b94928a2ae4916078ca51e05b6b800b",
           128: "adace1e0ed228fccda1f39692059dd4c", 224: "b718ff6835fcbdb22ba9eacccd7b2601"}


@register_dataset("dermamnist")
class DermaMnist(_MedMnistSpec):
    """Dermatoscopy (HAM10000), 7 diseases."""
    classes = ("actinic keratoses and intraepithelial carcinoma", "basal cell carcinoma",
               "benign keratosis-like lesions", "dermatofibroma", "melanoma",
               "melanocytic nevi", "vascular lesions")
    channels = 3
    md5 = {28: "0744692d530f8e62ec473284d019b0c7", 64: "b70a2f5635c6199aeaa28c31d7202e1f",
           128: "2defd784463fa5243564e855ed717de1", 224: "8974907d8e169bef5f5b96bc506ae45d"}


@register_dataset("octmnist")
class OctMnist(_MedMnistSpec):
    """Retinal optical coherence tomography, 4 diagnoses."""
    classes = ("choroidal neovascularization", "diabetic macular edema", "drusen", "normal")
    channels = 1
    md5 = {28: "c68d92d5b585d8d81f7112f81e2d0842", 64: "e229e9440236b774d9f0dfef9d07bdaf",
           128: "0a97e76651ace45c5d943ee3f65b63ae", 224: "abc493b6d529d5de7569faaef2773ba3"}


@register_dataset("organamnist")
class OrganAMnist(_MedMnistSpec):
    """Abdominal CT, axial view, 11 organs."""
    classes = ("bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right",
               "liver", "lung-left", "lung-right", "pancreas", "spleen")
    channels = 1
    md5 = {28: "68e3f8846a6bd62f0c9bf841c0d9eacc", 64: "2dcccc29b88e6da5a01161ef20cda288",
           128: "eeae80d0a227a8d099027e1b3cfd3b60", 224: "50747347e05c87dd3aaf92c49f9f3170"}
    eval_without = ("flip",)  # left and right organs are separate classes
