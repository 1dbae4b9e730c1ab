"""``torchvision.datasets.MNIST`` as the official scripts use it: ``MNIST(root, train=...,
download=..., transform=...)``, indexed as (transformed image, int label), from the IDX files
under ``root/MNIST/raw`` (gzip-compressed or not)."""
import gzip
from pathlib import Path

import numpy as np


def _idx(path: Path) -> np.ndarray:
    for p in (path, path.with_name(path.name + ".gz")):
        if p.exists():
            raw = gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
            dims = raw[3]
            shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
            return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)
    raise FileNotFoundError(f"{path}(.gz) not found: the stand-in reads MNIST from disk only")


class MNIST:
    def __init__(self, root, train=True, download=False, transform=None):
        raw = Path(root) / "MNIST" / "raw"
        prefix = "train" if train else "t10k"
        self.data = _idx(raw / f"{prefix}-images-idx3-ubyte")
        self.targets = _idx(raw / f"{prefix}-labels-idx1-ubyte").astype(np.int64)
        self.transform = transform
        self.classes = [str(c) for c in range(10)]

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        x = self.data[i]
        return (self.transform(x) if self.transform else x), int(self.targets[i])
