"""The state of a learned distillation run: the synthetic images and their optimiser, the
iterate average, the generator and the iteration counters; its snapshot and restore (the one
rollback path of NaN and interrupt), and the image step a method calls."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import torch

from ..formation import decode


class NonFiniteLoss(FloatingPointError):
    """A method's loss became NaN or inf; the engine rolls the iteration back and saves."""

    def __init__(self, value: float) -> None:
        super().__init__(f"the loss became {value}")
        self.value = value


@dataclass
class RunState:
    """``images`` is the optimised leaf tensor (stored images; ``factor`` > 1 stores tiles),
    class-major with ``labels``. ``ema`` is the average saved with ``--ema``."""

    images: torch.Tensor
    labels: torch.Tensor
    factor: int
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    ema: Optional[torch.Tensor] = None
    iteration: int = 0
    history: list[float] = field(default_factory=list)  # loss per iteration
    elapsed: list[float] = field(default_factory=list)  # run seconds after each iteration
    prior_seconds: float = 0.0  # seconds of earlier processes (resume)
    # training-split indices of the real images the run started from (real or herding
    # start), class-major, ``factor``**2 per stored image; None from noise. Not checkpointed:
    # a resumed run draws the same start again before loading its checkpoint.
    start_indices: Optional[torch.Tensor] = None

    def decoded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The images a model trains on (differentiable w.r.t. ``images``) and their labels."""
        return decode(self.images, self.labels, self.factor)

    def result(self) -> torch.Tensor:
        """The images to save: the average with ``--ema``, else the last iterate."""
        return (self.ema if self.ema is not None else self.images).detach()

    def step(self, loss: torch.Tensor) -> float:
        """One optimiser step of the images on ``loss``; NonFiniteLoss before touching them."""
        value = float(loss.detach())
        if not math.isfinite(value):
            raise NonFiniteLoss(value)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return value

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def momentum_buffer(self) -> Optional[torch.Tensor]:
        st = self.optimizer.state.get(self.images)
        return st.get("momentum_buffer") if st else None

    def snapshot(self) -> tuple:
        buf = self.momentum_buffer()
        return (self.images.detach().clone(), None if buf is None else buf.clone(),
                None if self.ema is None else self.ema.clone())

    def restore(self, snap: tuple) -> None:
        images, buf, ema = snap
        with torch.no_grad():
            self.images.copy_(images)
        if buf is None:
            self.optimizer.state.pop(self.images, None)
        else:
            self.optimizer.state[self.images]["momentum_buffer"] = buf
        if self.ema is not None:
            self.ema.copy_(ema)
