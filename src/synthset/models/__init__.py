"""Networks, registered by name; every builder takes (channels, num_classes, size)."""
from __future__ import annotations

from typing import Callable

import torch

from ..registry import Registry
from . import alexnet, convnet, lenet, mlp, resnet, vgg
from .base import SynthNet

Builder = Callable[[int, int, tuple], SynthNet]
MODELS: Registry[Builder] = Registry("model")
for _name, _opts in convnet.VARIANTS.items():
    MODELS.add(_name, convnet.builder(**_opts))
MODELS.add("MLP", mlp.build)
MODELS.add("LeNet", lenet.build)
MODELS.add("AlexNet", alexnet.build)
MODELS.add("VGG11", vgg.build_vgg11)
MODELS.add("VGG11BN", vgg.build_vgg11bn)
MODELS.add("ResNet18", resnet.build_resnet18)
MODELS.add("ResNet18BN", resnet.build_resnet18bn)


def build_model(name: str, channels: int, num_classes: int, size, *,
                generator: torch.Generator | None = None) -> SynthNet:
    """Build a freshly initialised network. With ``generator`` the initial weights are a
    function of it (we seed a scratch default generator from it, then restore the state)."""
    builder = MODELS.get(name)
    size = tuple(size)
    if generator is None:
        return builder(channels, num_classes, size)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        return builder(channels, num_classes, size)
    finally:
        torch.random.set_rng_state(state)


__all__ = ["MODELS", "SynthNet", "build_model"]
