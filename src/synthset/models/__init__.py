"""Networks, one family per file, each registered with ``@register_model`` in its file and
found by importing every module of this package; every builder takes (channels,
num_classes, size)."""
from __future__ import annotations

import torch

from ..registry import discover
from .base import MODELS, SynthNet, register_model

discover(__name__, __path__)


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
