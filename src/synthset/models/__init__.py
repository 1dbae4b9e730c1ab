"""Networks, one family per file, each registered with ``@register_model`` in its file; every
builder takes (channels, num_classes, size)."""
from __future__ import annotations

import importlib

import torch

from .base import MODELS, SynthNet, register_model

for _name in ("convnet", "mlp", "lenet", "alexnet", "vgg", "resnet"):  # registration order
    importlib.import_module(f"{__name__}.{_name}")


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


__all__ = ["MODELS", "SynthNet", "build_model", "register_model"]
