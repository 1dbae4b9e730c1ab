"""Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017): 28 px grey images of 10 kinds of
clothing, in MNIST's IDX format, under ``<root>/fashion-mnist/raw/``.

The MD5s are those Zalando publishes for the four ``.gz`` files, as torchvision's
``FashionMNIST.resources`` lists them (torchvision/datasets/mnist.py); normalisation is the
DC/DSA/DM code's (``get_dataset`` in utils.py of VICO-UoE/DatasetCondensation, commit
53f63a6). Clothes are mirror-symmetric, so evaluation keeps DSA's flip.
"""
from __future__ import annotations

from pathlib import Path

from ..config import DataConfig
from .base import DatasetInfo, ImageData
from .mnist import MnistSource, find_idx, load, raw_dir, write_fake_idx
from .spec import DatasetSpec, register_dataset

SOURCE = MnistSource(
    name="Fashion-MNIST", folder="fashion-mnist", md5_of_gz=True, wheel=None,
    files={"train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
           "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
           "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
           "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310"},
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
             "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"))
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot")
INFO = DatasetInfo(name="fashion-mnist", channels=1, size=(28, 28), class_names=CLASSES,
                   mean=(0.2861,), std=(0.3530,))
# DatasetCondensation readme (commit 53f63a6), Tables 1 (DC) and 2 (DSA); ConvNet, IPC 1/10/50
README = "DatasetCondensation README (commit 53f63a6)"


@register_dataset("fashion-mnist")
class FashionMnistSpec(DatasetSpec):
    val_per_class = 500
    references = {"dc": ({1: 70.5, 10: 82.3, 50: 83.6}, README + ", Table 1"),
                  "dsa": ({1: 70.6, 10: 84.6, 50: 88.7}, README + ", Table 2")}
    where = ("downloaded on first use from Zalando's mirrors (MD5 of each .gz); offline: put "
             "the four .gz files in <root>/fashion-mnist/raw/ and pass --no-download")
    citation = ("Xiao, Rasul & Vollgraf, Fashion-MNIST: a Novel Image Dataset for Benchmarking "
                "Machine Learning Algorithms, arXiv:1708.07747, 2017")

    def info(self, config=None):
        size = config.image_size if config is not None and config.image_size else 28
        return DatasetInfo(**{**INFO.__dict__, "size": (size, size)})

    def present(self, root: Path) -> bool:
        return all(find_idx(raw_dir(root, SOURCE), name) for name in SOURCE.files)

    def fake(self, root: Path) -> DataConfig:
        write_fake_idx(raw_dir(root, SOURCE))
        return DataConfig(name="fashion-mnist", root=str(root), download=False, verify=False)

    def load(self, config: DataConfig, split: str) -> ImageData:
        return load(config, split, source=SOURCE, info=INFO)
