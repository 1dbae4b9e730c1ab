"""ResNet-18 (He et al., 2016), the CIFAR-style variant of the DC benchmark: 3x3 stem,
no stem pooling, four stages of two basic blocks (64-128-256-512), instance norm
(``ResNet18``) or batch norm (``ResNet18BN``), global average pooling."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import SynthNet, make_norm, register_model


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, norm: str):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.n1 = make_norm(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.n2 = make_norm(norm, cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                          make_norm(norm, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.n1(self.conv1(x)))
        return F.relu(self.n2(self.conv2(out)) + self.shortcut(x))


class ResNet(SynthNet):
    def __init__(self, channels: int, num_classes: int, size: tuple[int, int], *,
                 num_blocks=(2, 2, 2, 2), norm: str = "instancenorm"):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(channels, 64, 3, padding=1, bias=False),
                                  make_norm(norm, 64), nn.ReLU(inplace=True))
        stages, cin = [], 64
        for i, (cout, n) in enumerate(zip((64, 128, 256, 512), num_blocks)):
            blocks = []
            for j in range(n):
                blocks.append(BasicBlock(cin, cout, 2 if (j == 0 and i > 0) else 1, norm))
                cin = cout
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.classifier = nn.Linear(512, num_classes)

    def blocks(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = [self.stem(x)]
        for stage in self.stages:
            out.append(stage(out[-1]))
        return out

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return torch.flatten(F.adaptive_avg_pool2d(h, 1), 1)


@register_model("ResNet18")
def build_resnet18(channels: int, num_classes: int, size: tuple[int, int]) -> ResNet:
    return ResNet(channels, num_classes, size, norm="instancenorm")


@register_model("ResNet18BN")
def build_resnet18bn(channels: int, num_classes: int, size: tuple[int, int]) -> ResNet:
    return ResNet(channels, num_classes, size, norm="batchnorm")
