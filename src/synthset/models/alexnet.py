"""AlexNet (Krizhevsky et al., 2012), the small variant of the DC benchmark: five convs
(128, 192, 256, 192, 192), ReLU, three 2x2 max pools, one linear classifier."""
from __future__ import annotations

from torch import nn

from .base import SynthNet, feature_dim, register_model


class AlexNet(SynthNet):
    def __init__(self, channels: int, num_classes: int, size: tuple[int, int]):
        super().__init__()
        r = nn.ReLU
        self.features = nn.ModuleList([
            nn.Sequential(nn.Conv2d(channels, 128, 5, padding=4 if channels == 1 else 2), r(inplace=True),
                          nn.MaxPool2d(2)),
            nn.Sequential(nn.Conv2d(128, 192, 5, padding=2), r(inplace=True), nn.MaxPool2d(2)),
            nn.Sequential(nn.Conv2d(192, 256, 3, padding=1), r(inplace=True)),
            nn.Sequential(nn.Conv2d(256, 192, 3, padding=1), r(inplace=True)),
            nn.Sequential(nn.Conv2d(192, 192, 3, padding=1), r(inplace=True), nn.MaxPool2d(2)),
        ])
        self.classifier = nn.Linear(feature_dim(self, channels, size), num_classes)


@register_model("AlexNet")
def build(channels: int, num_classes: int, size: tuple[int, int]) -> AlexNet:
    return AlexNet(channels, num_classes, size)
