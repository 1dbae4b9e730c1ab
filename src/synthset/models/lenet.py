"""LeNet-5 (LeCun et al., 1998) as in the DC benchmark: conv5(6) -> pool -> conv5(16) -> pool
-> 120 -> 84 -> classes, ReLU, max pooling; single-channel inputs pad the first conv by 2."""
from __future__ import annotations

import torch
from torch import nn

from .base import SynthNet, feature_dim, register_model


class LeNet(SynthNet):
    def __init__(self, channels: int, num_classes: int, size: tuple[int, int]):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(channels, 6, 5, padding=2 if channels == 1 else 0),
                                   nn.ReLU(inplace=True), nn.MaxPool2d(2))
        self.conv2 = nn.Sequential(nn.Conv2d(6, 16, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2))
        self.fc = nn.Sequential()  # set after the feature size is known
        d = feature_dim(self, channels, size)
        self.fc = nn.Sequential(nn.Linear(d, 120), nn.ReLU(inplace=True), nn.Linear(120, 84),
                                nn.ReLU(inplace=True))
        self.classifier = nn.Linear(84, num_classes)

    def blocks(self, x: torch.Tensor) -> list[torch.Tensor]:
        h1 = self.conv1(x)
        return [h1, self.conv2(h1)]

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(h, 1))


@register_model("LeNet")
def build(channels: int, num_classes: int, size: tuple[int, int]) -> LeNet:
    return LeNet(channels, num_classes, size)
