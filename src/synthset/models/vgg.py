"""VGG11 (Simonyan & Zisserman, 2015) as in the DC benchmark: 3x3 convs with instance norm
(``VGG11``) or batch norm (``VGG11BN``); single-channel inputs pad the first conv by 3."""
from __future__ import annotations

from torch import nn

from .base import SynthNet, conv2d, feature_dim, make_norm, register_model

CFG11 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG(SynthNet):
    def __init__(self, channels: int, num_classes: int, size: tuple[int, int], *,
                 cfg=CFG11, norm: str = "instancenorm"):
        super().__init__()
        stages, layers, c = [], [], channels
        for i, v in enumerate(cfg):
            if v == "M":
                # Pool only while the map is at least 2x2, so small inputs still work.
                layers.append(nn.MaxPool2d(2))
                stages.append(nn.Sequential(*layers))
                layers = []
                continue
            pad = 3 if (i == 0 and channels == 1 and tuple(size) == (28, 28)) else 1
            layers += [conv2d(c, v, 3, padding=pad), make_norm(norm, v), nn.ReLU(inplace=True)]
            c = v
        self.features = nn.ModuleList(stages)
        self.classifier = nn.Linear(feature_dim(self, channels, size), num_classes)


@register_model("VGG11")
def build_vgg11(channels: int, num_classes: int, size: tuple[int, int]) -> VGG:
    return VGG(channels, num_classes, size, norm="instancenorm")


@register_model("VGG11BN")
def build_vgg11bn(channels: int, num_classes: int, size: tuple[int, int]) -> VGG:
    return VGG(channels, num_classes, size, norm="batchnorm")
