"""Datasets, one file each, registered with ``@register_dataset`` in their file:
``load_dataset(DataConfig(name=...), "train"|"test")``."""
from __future__ import annotations

import importlib

from ..config import DataConfig
from .base import DataError, DatasetInfo, ImageData, denormalize, normalize
from .spec import DATASETS, DatasetSpec, register_dataset

for _name in ("mnist", "mhist", "folder"):  # the dataset files (the others are helpers)
    importlib.import_module(f"{__name__}.{_name}")


def load_dataset(config: DataConfig, split: str) -> ImageData:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return DATASETS.get(config.name).load(config, split)


__all__ = ["DATASETS", "DataError", "DatasetInfo", "DatasetSpec", "ImageData", "load_dataset",
           "normalize", "denormalize", "register_dataset"]
