"""Datasets, one file each, registered with ``@register_dataset`` in their file and found
by importing every module of this package: ``load_dataset(DataConfig(name=...),
"train"|"val"|"test")``."""
from __future__ import annotations

from ..config import DataConfig
from ..registry import discover
from .base import DataError, DatasetInfo, ImageData, denormalize, normalize
from .spec import DATASETS, DatasetSpec, register_dataset

discover(__name__, __path__)


SPLITS = ("train", "val", "test")


def load_dataset(config: DataConfig, split: str) -> ImageData:
    """A split of ``config``'s dataset. ``"val"``: the spec's validation images, carved from
    the training split with ``config.val_seed``; ``"train"`` with ``config.holdout_val``: the
    training split without them."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    spec = DATASETS.get(config.name)
    if split == "test" or (split == "train" and not config.holdout_val):
        return spec.load(config, split)
    from .split import split_train
    train = spec.load(config, "train")
    rest, val = split_train(train, spec.val_indices(train, config.val_seed, config))
    return val if split == "val" else rest


def load_training(config: DataConfig) -> tuple[ImageData, dict]:
    """The training images a distillation run reads (without the validation split where
    ``config.holdout_val``) and what it records of that split: its size rule, seed, size
    and index hash, so a reader can check which images were held out."""
    from .split import indices_hash, split_train
    spec = DATASETS.get(config.name)
    whole = spec.load(config, "train")
    try:
        index = spec.val_indices(whole, config.val_seed, config)
    except ValueError as e:  # a split too small to carve it (tiny test data): say so
        if config.holdout_val:
            raise ValueError(f"--holdout-val: {e}") from None
        return whole, {"held_out": False, "rule": spec.val_description(), "unavailable": str(e)}
    record = {"held_out": config.holdout_val, "seed": config.val_seed, "size": int(len(index)),
              "rule": spec.val_description(), "sha256_16": indices_hash(index)}
    return (split_train(whole, index)[0] if config.holdout_val else whole), record
