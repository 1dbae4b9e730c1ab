"""ConvNet (Gidaris & Komodakis, 2018), the field's standard distillation backbone as in
DC/DSA/DM: depth x [conv3x3(width) -> norm -> ReLU -> 2x2 pool], then one linear layer.
For 28x28 single-channel input the first conv pads by 3 so the net sees 32x32."""
from __future__ import annotations

from torch import nn

from .base import MODELS, SynthNet, conv2d, feature_dim, make_norm


class ConvNet(SynthNet):
    def __init__(self, channels: int, num_classes: int, size: tuple[int, int], *, width: int = 128,
                 depth: int = 3, norm: str = "instancenorm", pooling: str = "avgpool") -> None:
        super().__init__()
        if pooling not in ("avgpool", "maxpool", "none"):
            raise ValueError(f"pooling must be avgpool|maxpool|none, got {pooling!r}")
        h, w = size
        if pooling != "none" and min(h, w) // 2 ** depth < 1:
            raise ValueError(f"ConvNet depth {depth} pools {h}x{w} images below 1 pixel; "
                             f"use a smaller depth or a larger image size")
        self.depth, self.width, self.norm_kind = depth, width, norm
        layers = []
        c = channels
        for d in range(depth):
            pad = 3 if (d == 0 and channels == 1 and (h, w) == (28, 28)) else 1
            block = [conv2d(c, width, 3, padding=pad), make_norm(norm, width), nn.ReLU(inplace=True)]
            if pooling == "avgpool":
                block.append(nn.AvgPool2d(2))
            elif pooling == "maxpool":
                block.append(nn.MaxPool2d(2))
            layers.append(nn.Sequential(*block))
            c = width
        self.features = nn.ModuleList(layers)
        self.classifier = nn.Linear(feature_dim(self, channels, size), num_classes)


def builder(**fixed):
    def build(channels: int, num_classes: int, size: tuple[int, int]) -> ConvNet:
        return ConvNet(channels, num_classes, size, **fixed)
    return build


VARIANTS = {
    "ConvNet": {},
    **{f"ConvNetD{d}": {"depth": d} for d in range(1, 8)},
    **{f"ConvNetW{w}": {"width": w} for w in (32, 64, 256)},
    "ConvNetBN": {"norm": "batchnorm"},
    "ConvNetLN": {"norm": "layernorm"},
    "ConvNetGN": {"norm": "groupnorm"},
    "ConvNetNN": {"norm": "none"},
    "ConvNetMP": {"pooling": "maxpool"},
    **{f"ConvNetD{d}BN": {"depth": d, "norm": "batchnorm"} for d in range(4, 8)},
}

for _name, _opts in VARIANTS.items():
    MODELS.add(_name, builder(**_opts))
