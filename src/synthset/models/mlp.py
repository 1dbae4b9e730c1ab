"""MLP as in the DC benchmark: flatten -> 128 -> 128 -> classes, ReLU."""
from __future__ import annotations

import torch
from torch import nn

from .base import SynthNet, register_model


class MLP(SynthNet):
    def __init__(self, channels: int, num_classes: int, size: tuple[int, int], *, width: int = 128):
        super().__init__()
        self.fc1 = nn.Linear(channels * size[0] * size[1], width)
        self.fc2 = nn.Linear(width, width)
        self.classifier = nn.Linear(width, num_classes)

    def blocks(self, x: torch.Tensor) -> list[torch.Tensor]:
        h1 = torch.relu(self.fc1(torch.flatten(x, 1)))
        return [h1, torch.relu(self.fc2(h1))]


@register_model("MLP")
def build(channels: int, num_classes: int, size: tuple[int, int]) -> MLP:
    return MLP(channels, num_classes, size)
