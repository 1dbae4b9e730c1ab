"""What a distillation method is: something that turns a training split into a small
labelled set. Coresets select real images; learned methods (DM, DataDAM) optimise them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ..config import DistillConfig
from ..data.base import ImageData


@dataclass
class MethodOutput:
    images: torch.Tensor  # normalised floats (N, C, H, W)
    labels: torch.Tensor
    metadata: dict[str, Any] = field(default_factory=dict)


class Method:
    """Base class. ``run`` gets the training split and returns the set."""

    name: str = ""

    def run(self, train: ImageData, config: DistillConfig, *, device: torch.device,
            generator: torch.Generator, log: Callable[[str], None] = print,
            run_dir=None, resume: bool = False, data=None) -> MethodOutput:
        raise NotImplementedError


def check_ipc(train: ImageData, ipc: int) -> list[torch.Tensor]:
    """Per-class indices; ValueError if a class has fewer than ``ipc`` images."""
    by_class = train.indices_by_class()
    small = [(train.info.class_names[c], len(ix)) for c, ix in enumerate(by_class) if len(ix) < ipc]
    if small:
        raise ValueError(f"--ipc {ipc} is larger than a class of {train.info.name}: "
                         + ", ".join(f"class {n!r} has {k} training images" for n, k in small)
                         + f"; use --ipc <= {min(len(ix) for ix in by_class)}")
    return by_class
