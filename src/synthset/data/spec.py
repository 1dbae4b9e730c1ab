"""What a dataset registers: a ``DatasetSpec`` (its facts, where its files live, how it
loads, its evaluation augmentation policy and the reference rows reports print beside it)."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, ClassVar, Optional

from ..config import DataConfig, TrainConfig
from ..registry import Registry
from .base import DatasetInfo, ImageData


class DatasetSpec:
    """Subclasses set the class attributes and define ``load``/``present``/``info``.

    ``references``: published test accuracies (%, ConvNet) per method and IPC with their
    source, e.g. ``{"dm": ({1: 89.7, 10: 97.5}, "DM paper, Table 1")}``; ``"full"`` holds the
    whole-training-set figure. ``majority``: majority-class test accuracy (imbalanced data).
    ``eval_without``: DSA ops left out when training evaluation networks (digits are not
    mirror-symmetric: no flip)."""

    name: ClassVar[str] = ""
    references: ClassVar[dict] = {}
    majority: ClassVar[Optional[float]] = None
    eval_without: ClassVar[tuple[str, ...]] = ()
    where: ClassVar[str] = ""  # how a user gets the files
    # the validation split carved from the training split: a fixed number of images per
    # class, or else this fraction of each class (``data.split.val_indices``)
    val_per_class: ClassVar[Optional[int]] = None
    val_fraction: ClassVar[float] = 0.1
    citation: ClassVar[str] = ""
    # many classes in its fake data: every method on it takes minutes (gradient matching
    # loops over classes), so the contract test runs that under -m slow; its loader stays
    # in the default suite
    smoke_slow: ClassVar[bool] = False

    def info(self, config: Optional[DataConfig] = None) -> Optional[DatasetInfo]:
        """Channels, size, classes and mean/std (None where they come from the files)."""
        return None

    def present(self, root: Path) -> bool:
        raise NotImplementedError

    def load(self, config: DataConfig, split: str) -> ImageData:
        raise NotImplementedError

    def fake(self, root: Path) -> DataConfig:
        """Write a tiny fake copy of the dataset under ``root``, in its real file format, and
        return the config that loads it: the contract tests run every method on it."""
        raise NotImplementedError(f"dataset {self.name!r} gives no fake data maker")

    def val_indices(self, train: ImageData, seed: int, config: Optional[DataConfig] = None):
        """Indices into the (whole) training split of the validation images (``config``: the
        data it was loaded with, for datasets whose files fix the split)."""
        from .split import val_indices
        return val_indices(train.labels, train.info.num_classes, per_class=self.val_per_class,
                           fraction=None if self.val_per_class else self.val_fraction, seed=seed)

    def val_description(self) -> str:
        return (f"{self.val_per_class} images per class" if self.val_per_class
                else f"{self.val_fraction:g} of each class")

    def train_config(self, cfg: TrainConfig) -> TrainConfig:
        """The evaluation protocol's training options for this dataset."""
        if not self.eval_without:
            return cfg
        return dataclasses.replace(cfg, dsa=cfg.dsa.without(*self.eval_without))


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def register_dataset(name: str) -> Callable[[type], type]:
    """Class decorator: register an instance of the spec under ``name``."""
    return DATASETS.register_class(name)
