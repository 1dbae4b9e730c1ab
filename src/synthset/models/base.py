"""What every network offers a distillation method.

``blocks(x)`` returns the output of each feature block (for attention matching),
``embed(x)`` the feature vector before the classifier, ``forward(x)`` the logits.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import Registry

# name -> builder(channels, num_classes, size); entries register in their own file.
MODELS: Registry = Registry("model")


def register_model(name: str):
    """Decorator on a builder ``(channels, num_classes, size) -> SynthNet``."""
    return MODELS.register(name)


NORMS = ("instancenorm", "batchnorm", "layernorm", "groupnorm", "none")


class GroupNorm32(nn.GroupNorm):
    """GroupNorm whose statistics are computed in fp32 under bf16 autocast (the output keeps
    the input's dtype): a per-channel mean and variance over a few hundred bf16 values
    loses digits that the normalised activations then carry. A no-op in fp32."""

    def forward(self, x):
        if x.dtype == torch.float32:
            return super().forward(x)
        with torch.autocast(x.device.type, enabled=False):
            return super().forward(x.float()).to(x.dtype)


class FewChannelConv2d(nn.Conv2d):
    """A convolution with few input channels (a network's first layer on 1- or 3-channel
    images), computed on the CPU as an explicit im2col matrix product when its input needs
    no gradient (training a network on data; a no-grad forward). oneDNN's weight gradient
    for one input channel ran at ~4 GFLOP/s in bf16 on a 2-core Intel Xeon with AMX: 61 of
    a ConvNet training step's 171 ms (100 MNIST images); as a matrix product it is two small
    GEMMs, and the step took 113 ms; with the bias folded into the weight product (below) a
    1000-epoch evaluation run took 115 s instead of 138 s. An input that needs a gradient
    (synthetic images) keeps the library convolution: im2col's input gradient (col2im) made
    DataDAM's synthetic pass slower. The same maths (and parameter names) as ``nn.Conv2d``; other devices use the
    library convolution."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.device.type != "cpu" or x.requires_grad or self.groups != 1
                or self.padding_mode != "zeros"):
            return super().forward(x)
        n, _, h, w = x.shape
        (kh, kw), (ph, pw), (sh, sw), (dh, dw) = self.kernel_size, self.padding, self.stride, self.dilation
        ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        cols = F.unfold(x, self.kernel_size, dilation=self.dilation, padding=self.padding,
                        stride=self.stride)  # [n, in_channels * kh * kw, ho * wo]
        weight = self.weight.reshape(self.out_channels, -1)
        if self.bias is None:
            y = weight @ cols
        elif torch.is_grad_enabled() and self.bias.requires_grad:
            # the bias as one more weight column against a row of ones: its gradient comes
            # out of the weight-gradient product instead of a reduction over the whole
            # output gradient
            weight = torch.cat([weight, self.bias[:, None]], 1)
            y = weight @ torch.cat([cols, cols.new_ones(n, 1, cols.shape[2])], 1)
        else:
            y = weight @ cols + self.bias[:, None]
        return y.view(n, self.out_channels, ho, wo)


# im2col pays off while a pixel's patch is short (3x3 on 3 channels: 27 values)
FEW_CHANNEL_PATCH = 27


def conv2d(in_channels: int, out_channels: int, kernel_size: int, **kw) -> nn.Conv2d:
    """``nn.Conv2d``, or ``FewChannelConv2d`` where a patch has at most 27 values."""
    few = in_channels * kernel_size * kernel_size <= FEW_CHANNEL_PATCH and kw.get("groups", 1) == 1
    return (FewChannelConv2d if few else nn.Conv2d)(in_channels, out_channels, kernel_size, **kw)


def make_norm(kind: str, channels: int) -> nn.Module:
    """The field's norms: instance norm is GroupNorm with one group per channel (affine),
    as in the DC/DM reference ConvNet; layer norm is GroupNorm with one group."""
    if kind == "instancenorm":
        return GroupNorm32(channels, channels, affine=True)
    if kind == "batchnorm":
        return nn.BatchNorm2d(channels)
    if kind == "layernorm":
        return GroupNorm32(1, channels, affine=True)
    if kind == "groupnorm":
        return GroupNorm32(min(4, channels), channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; choose one of {', '.join(NORMS)}")


class SynthNet(nn.Module):
    """Base class: subclasses define ``blocks`` and ``head`` (feature map -> embedding)."""

    classifier: nn.Module
    features: nn.ModuleList

    def blocks(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Output of each block of ``self.features`` (override for other structures)."""
        out = []
        for block in self.features:
            x = block(x)
            out.append(x)
        return out

    def activations(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(each block's activation before its pooling layer, the last block's output).
        Attention matching reads the ReLU outputs (DataDAM's code hooks nn.ReLU); blocks
        without a trailing pooling layer give their output; networks with their own
        ``blocks`` (ResNet, LeNet, MLP) give their block outputs."""
        if type(self).blocks is not SynthNet.blocks:
            out = self.blocks(x)
            return out, out[-1]
        acts = []
        for block in self.features:
            if isinstance(block, nn.Sequential) and isinstance(block[-1], (nn.AvgPool2d, nn.MaxPool2d)):
                a = block[:-1](x)
                acts.append(a)
                x = block[-1](a)
            else:
                x = block(x)
                acts.append(x)
        return acts, x

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return torch.flatten(h, 1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(x)[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


def feature_dim(net: SynthNet, channels: int, size: tuple[int, int]) -> int:
    """Embedding width, found by one forward on a single zero image."""
    with torch.no_grad():
        was = net.training
        net.eval()
        d = net.embed(torch.zeros(1, channels, *size)).shape[1]
        net.train(was)
    return int(d)
