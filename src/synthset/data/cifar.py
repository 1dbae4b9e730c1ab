"""CIFAR-10 and CIFAR-100 (Krizhevsky, 2009) from the official **binary** versions.

Records are read straight from ``<root>/cifar10/cifar-10-binary.tar.gz`` (verified by the
MD5 that https://www.cs.toronto.edu/~kriz/cifar.html publishes for it) or from the
extracted ``cifar-10-batches-bin/`` beside it (``cifar100/`` and ``cifar-100-binary``
likewise). A record is one label byte (CIFAR-100: coarse then fine) and 3,072 pixel bytes,
red, green, blue planes in row-major order, so the images are already channels-first. The
Python versions of the archives are pickles and are refused, never loaded. Normalisation is
the DC/DSA/DM code's (``get_dataset`` in utils.py of VICO-UoE/DatasetCondensation, commit
53f63a6); evaluation keeps DSA's flip, as that code's readme asks for CIFAR.
"""
from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..config import DataConfig
from .base import DataError, DatasetInfo, ImageData, resize_uint8
from .download import data_root, download_url, md5_of
from .spec import DatasetSpec, register_dataset

PIXELS = 3 * 32 * 32
README = "DatasetCondensation README (commit 53f63a6)"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")
CIFAR100_FINE = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus "
    "butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach "
    "couch crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster "
    "house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree "
    "motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear "
    "pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket "
    "rose sea seal shark shrew skunk skyscraper snail snake spider squirrel streetcar "
    "sunflower sweet_pepper table tank telephone television tiger tractor train trout tulip "
    "turtle wardrobe whale willow_tree wolf woman worm").split()
CIFAR100_COARSE = (
    "aquatic_mammals fish flowers food_containers fruit_and_vegetables "
    "household_electrical_devices household_furniture insects large_carnivores "
    "large_man-made_outdoor_things large_natural_outdoor_scenes large_omnivores_and_herbivores "
    "medium_mammals non-insect_invertebrates people reptiles small_mammals trees vehicles_1 "
    "vehicles_2").split()


@dataclass(frozen=True)
class CifarSource:
    """One binary CIFAR archive declared as data."""

    name: str
    folder: str  # under the data root
    archive: str
    md5: str
    inner: str  # the folder inside the archive
    train: tuple[str, ...]
    test: str
    label_bytes: int
    label_byte: int  # which of them is the label
    names_file: str  # class names, one per line
    n_train: int = 50000
    n_test: int = 10000
    python_names: tuple[str, ...] = ()  # the pickle version's archive and folder: refused

    @property
    def url(self) -> str:
        return "https://www.cs.toronto.edu/~kriz/" + self.archive


CIFAR10 = CifarSource(
    name="CIFAR-10", folder="cifar10", archive="cifar-10-binary.tar.gz",
    md5="c32a1d4ab5d03f1284b67883e8d87530", inner="cifar-10-batches-bin",
    train=tuple(f"data_batch_{i}.bin" for i in range(1, 6)), test="test_batch.bin",
    label_bytes=1, label_byte=0, names_file="batches.meta.txt",
    python_names=("cifar-10-python.tar.gz", "cifar-10-batches-py"))
_C100 = dict(folder="cifar100", archive="cifar-100-binary.tar.gz",
             md5="03b5dce01913d631647c71ecec9e9cb8", inner="cifar-100-binary",
             train=("train.bin",), test="test.bin", label_bytes=2,
             python_names=("cifar-100-python.tar.gz", "cifar-100-python"))
CIFAR100 = CifarSource(name="CIFAR-100", label_byte=1, names_file="fine_label_names.txt", **_C100)
CIFAR100_COARSE_SOURCE = CifarSource(name="CIFAR-100 (coarse labels)", label_byte=0,
                                     names_file="coarse_label_names.txt", **_C100)


def _folder(root: Path, src: CifarSource) -> Path:
    return Path(root) / src.folder


def _refuse_pickles(folder: Path, src: CifarSource) -> None:
    for name in src.python_names:
        if (folder / name).exists():
            raise DataError(f"{folder / name} is the Python version of {src.name}: pickles, "
                            f"which synthset never loads (unpickling can run code). Download "
                            f"the binary version {src.url} (MD5 {src.md5}) into {folder}.")


def _read_members(archive: Path, src: CifarSource, names: list[str]) -> dict[str, bytes]:
    """The named files of the archive, read from it without extracting anything."""
    want = {f"{src.inner}/{n}": n for n in names}
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                if member.name in want and member.isfile():
                    out[want[member.name]] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DataError(f"{archive}: cannot be read ({e}); the file is truncated or corrupt. "
                        f"Delete it and download it again.") from e
    return out


def ensure(root: Path, src: CifarSource, *, download: bool, check: bool, log=print) -> Path:
    """The extracted folder or the verified archive; downloads the archive if allowed."""
    folder = _folder(root, src)
    extracted, archive = folder / src.inner, folder / src.archive
    if extracted.is_dir():
        return extracted
    if not archive.exists():
        _refuse_pickles(folder, src)
        if not download:
            raise DataError(f"{src.name} not found: neither {archive} nor {extracted} exists and "
                            f"download is off. Put the official binary archive ({src.url}) "
                            f"there, or allow download.")
        log(f"downloading {src.name} ({src.url}) to {folder}")
        try:
            download_url(src.url, archive, md5=src.md5)
        except OSError as e:
            raise DataError(f"could not download {src.url} ({e}). Without a network, fetch it "
                            f"on another machine, put it in {folder} and pass --no-download.") from e
    if check and (got := md5_of(archive)) != src.md5:
        raise DataError(f"{archive}: checksum mismatch (md5 {got}, expected {src.md5}). The file "
                        f"is corrupt or not the official binary {src.name}: delete it and run "
                        f"again to re-download (or pass --no-verify for a modified copy).")
    return archive


def _records(raw: bytes, where: str, src: CifarSource, expected: Optional[int]) -> np.ndarray:
    size = src.label_bytes + PIXELS
    if len(raw) % size or not raw:
        raise DataError(f"{where}: {len(raw)} bytes is not a whole number of {src.name} records "
                        f"({size} bytes each); the file is truncated or not the binary version.")
    rec = np.frombuffer(raw, dtype=np.uint8).reshape(-1, size)
    if expected is not None and len(rec) != expected:
        raise DataError(f"{where}: {len(rec)} records, expected {expected}")
    return rec


def load_split(path: Path, src: CifarSource, train: bool, *, check: bool):
    """(uint8 images (N, 3, 32, 32), int64 labels, class names) of a split."""
    files = list(src.train) if train else [src.test]
    if path.is_dir():
        blobs = {}
        for n in [*files, src.names_file]:
            if (path / n).exists():
                blobs[n] = (path / n).read_bytes()
    else:
        blobs = _read_members(path, src, [*files, src.names_file])
    missing = [n for n in files if n not in blobs]
    if missing:
        raise DataError(f"{path}: no {', '.join(missing)} (expected inside {src.inner}/); this is "
                        f"not the binary {src.name}")
    per_file = (src.n_train if train else src.n_test) // len(files)
    rec = np.concatenate([_records(blobs[n], f"{path}/{n}", src, per_file if check else None)
                          for n in files])
    images = torch.from_numpy(rec[:, src.label_bytes:].reshape(-1, 3, 32, 32).copy())
    labels = torch.from_numpy(rec[:, src.label_byte].astype(np.int64))
    names = [ln.strip() for ln in blobs.get(src.names_file, b"").decode().splitlines() if ln.strip()]
    return images, labels, names


class _CifarSpec(DatasetSpec):
    source: CifarSource
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    @property
    def where(self) -> str:
        return (f"downloaded on first use (binary version, MD5-checked); offline: put "
                f"{self.source.archive} (or its {self.source.inner}/) in "
                f"<root>/{self.source.folder}/ and pass --no-download")

    def info(self, config=None):
        size = config.image_size if config is not None and config.image_size else 32
        return DatasetInfo(name=self.name, channels=3, size=(size, size),
                           class_names=self.classes, mean=self.mean, std=self.std)

    def present(self, root: Path) -> bool:
        folder = _folder(root, self.source)
        return (folder / self.source.inner).is_dir() or (folder / self.source.archive).exists()

    def load(self, config: DataConfig, split: str) -> ImageData:
        path = ensure(data_root(config.root), self.source, download=config.download,
                      check=config.verify)
        images, labels, names = load_split(path, self.source, split == "train", check=config.verify)
        info = self.info(config)
        if names and tuple(names) != self.classes:
            raise DataError(f"{path}: its class names ({', '.join(names[:3])}, ...) are not "
                            f"{self.source.name}'s")
        if labels.numel() and int(labels.max()) >= info.num_classes:
            raise DataError(f"{path}: label {int(labels.max())} is out of range for "
                            f"{info.num_classes} classes")
        if info.size != (32, 32):
            images = resize_uint8(images, info.size[0])
        return ImageData(images=images, labels=labels, info=info)

    def fake(self, root: Path) -> DataConfig:
        """A tiny archive in the official layout (``write_fake_archive``)."""
        write_fake_archive(_folder(root, self.source) / self.source.archive, self.source)
        return DataConfig(name=self.name, root=str(root), download=False, verify=False)


def write_fake_archive(path: Path, src: CifarSource, *, per_class: int = 4) -> None:
    """The binary archive's exact layout with few records (tests and contract checks):
    ``per_class`` noise images per class in each training file, half as many in the test
    file, and the class-name files. CIFAR-100's coarse label is the fine label mod 20, so
    one fake archive serves both its specs."""
    import io
    rng = np.random.default_rng(0)
    fine = np.arange(10 if src.label_bytes == 1 else 100)

    def records(k: int) -> bytes:
        labels = np.repeat(fine, k)
        head = labels[:, None] if src.label_bytes == 1 else np.stack([labels % 20, labels], 1)
        pix = rng.integers(0, 256, (len(labels), PIXELS))
        return np.concatenate([head, pix], axis=1).astype(np.uint8).tobytes()

    files = {n: records(per_class) for n in src.train}
    files[src.test] = records(max(1, per_class // 2))
    names = ({CIFAR10.names_file: CIFAR10_CLASSES} if src.label_bytes == 1 else
             {"fine_label_names.txt": CIFAR100_FINE, "coarse_label_names.txt": CIFAR100_COARSE})
    files.update({n: ("\n".join(v) + "\n").encode() for n, v in names.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for n, blob in files.items():
            ti = tarfile.TarInfo(f"{src.inner}/{n}")
            ti.size = len(blob)
            tar.addfile(ti, io.BytesIO(blob))


@register_dataset("cifar10")
class Cifar10Spec(_CifarSpec):
    source = CIFAR10
    classes = CIFAR10_CLASSES
    mean, std = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
    val_per_class = 500
    references = {"dc": ({1: 28.3, 10: 44.9, 50: 53.9}, README + ", Table 1"),
                  "dsa": ({1: 28.8, 10: 52.1, 50: 60.6}, README + ", Table 2")}
    citation = "Krizhevsky, Learning Multiple Layers of Features from Tiny Images, tech. report, 2009"


@register_dataset("cifar100")
class Cifar100Spec(_CifarSpec):
    source = CIFAR100
    classes = tuple(CIFAR100_FINE)
    mean, std = (0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762)
    val_per_class = 50
    smoke_slow = True  # 100 classes
    references = {"dc": ({1: 12.8, 10: 25.2}, README + ", Table 1"),
                  "dsa": ({1: 13.9, 10: 32.3}, README + ", Table 2")}
    citation = Cifar10Spec.citation


@register_dataset("cifar100-coarse")
class Cifar100CoarseSpec(Cifar100Spec):
    """CIFAR-100's 20 superclasses (the archive's coarse label byte)."""
    source = CIFAR100_COARSE_SOURCE
    classes = tuple(CIFAR100_COARSE)
    val_per_class = 250
    references = {}
