"""The validation split: a fixed, stratified part of the training split that no distillation
run with ``holdout_val`` reads, on which every setting is chosen (the test split scores only
the final rows). Each dataset spec says its size (``val_per_class`` images, or
``val_fraction`` of each class); the indices follow from a recorded seed alone."""
from __future__ import annotations

import hashlib
from typing import Optional

import torch

from .base import ImageData


def val_indices(labels: torch.Tensor, classes: int, *, per_class: Optional[int] = None,
                fraction: Optional[float] = None, seed: int = 0) -> torch.Tensor:
    """Sorted indices into ``labels`` of the validation images: for each class, the first
    ``per_class`` (or ``round(fraction * n_c)``, at least 1) of a permutation of that class's
    indices drawn from a generator seeded with ``seed``. Each class draws from its own
    generator (seed, class), so a class's choice does not depend on the others' sizes."""
    if (per_class is None) == (fraction is None):
        raise ValueError("give exactly one of per_class and fraction")
    out = []
    for c in range(classes):
        ix = torch.nonzero(labels == c).flatten()
        n = per_class if per_class is not None else max(1, round(fraction * len(ix)))
        if n >= len(ix):
            raise ValueError(f"the validation split takes {n} images of class {c}, which has "
                             f"only {len(ix)} training images")
        g = torch.Generator().manual_seed(seed * 1_000_003 + c)
        out.append(ix[torch.randperm(len(ix), generator=g)[:n]])
    return torch.sort(torch.cat(out)).values


def indices_hash(index: torch.Tensor) -> str:
    """16 hex digits of a SHA-256 over the int64 indices (recorded in a run's metadata)."""
    return hashlib.sha256(index.to(torch.int64).contiguous().numpy().tobytes()).hexdigest()[:16]


def subset(data: ImageData, index: torch.Tensor) -> ImageData:
    return ImageData(images=data.images[index].contiguous(), labels=data.labels[index].clone(),
                     info=data.info)


def split_train(train: ImageData, val: torch.Tensor) -> tuple[ImageData, ImageData]:
    """(training split minus the validation images, the validation images)."""
    keep = torch.ones(len(train), dtype=torch.bool)
    keep[val] = False
    return subset(train, torch.nonzero(keep).flatten()), subset(train, val)


def balanced_subset(data: ImageData, n: int, *, seed: int) -> ImageData:
    """``n // classes`` images of each class, a seeded draw (the validation split's stratified
    rule, with its own seed stream): small-data references such as ``synthset train --subset``."""
    classes = data.info.num_classes
    if n < classes:
        raise ValueError(f"--subset {n} is fewer than one image per class ({classes} classes)")
    return subset(data, val_indices(data.labels, classes, per_class=n // classes, seed=seed + 7919))
