"""Datasets, registered by name: ``load_dataset(DataConfig(name=...), "train"|"test")``."""
from __future__ import annotations

from typing import Callable

from ..config import DataConfig
from ..registry import Registry
from . import folder, mhist, mnist
from .base import DataError, DatasetInfo, ImageData, denormalize, normalize

Loader = Callable[[DataConfig, str], ImageData]
DATASETS: Registry[Loader] = Registry("dataset")
DATASETS.add("mnist", mnist.load)
DATASETS.add("mhist", mhist.load)
DATASETS.add("folder", folder.load)


def load_dataset(config: DataConfig, split: str) -> ImageData:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return DATASETS.get(config.name)(config, split)


__all__ = ["DATASETS", "DataError", "DatasetInfo", "ImageData", "load_dataset", "normalize",
           "denormalize"]
