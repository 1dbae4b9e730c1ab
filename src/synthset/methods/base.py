"""What a distillation method is, and the registry it joins with ``@register_method``.

A method turns a training split into a small labelled set. A *selection* (coresets) picks
real images in ``select``; a *learned* method says how it takes one step of the engine
(``synthset.engine.runner``): ``step(ctx, state, generator)`` samples its networks and
batches from the generator and calls ``state.step(loss)`` for each image update. Each method
carries its own options dataclass (``Options``), its defaults and how reports show it."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch

from ..config import Options
from ..registry import Registry


@dataclass(frozen=True, kw_only=True)
class NoOptions(Options):
    """A method without options of its own."""


class Method:
    """Base class. ``kind`` is ``selection`` or ``learned``; ``order`` and ``color`` place
    the method in reports and plots; ``citation`` names its paper."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "selection"
    Options: ClassVar[type] = NoOptions
    order: ClassVar[int] = 100
    color: ClassVar[str] = "#333333"
    citation: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    # the smallest run that still exercises the method (engine and method options), for
    # the contract tests that run every method on every dataset
    smoke: ClassVar[dict[str, Any]] = {}

    def options(self, d: dict[str, Any] | None = None):
        """The method's options dataclass from a dict (unknown keys raise ValueError)."""
        try:
            return self.Options.from_dict(d or {})
        except TypeError as e:
            raise ValueError(f"{self.name}: bad options {d}: {e}") from None

    def normalize_options(self, d: dict[str, Any]) -> dict[str, Any]:
        return dataclasses.asdict(self.options(d))


class LearnedMethod(Method):
    """A method the engine runs: ``prepare`` builds per-run helpers (compiled paths, a net
    pool) into ``ctx.aux``; ``step`` runs one iteration and returns its loss;
    ``iteration_flops`` counts one iteration (FlopCounterMode on meta tensors)."""

    kind: ClassVar[str] = "learned"
    default_iterations: ClassVar[int] = 1000
    default_batch_real: ClassVar[int] = 256
    default_lr_img: ClassVar[float] = 1.0
    smoke: ClassVar[dict[str, Any]] = {"iterations": 2, "batch_real": 2, "checkpoint_every": 1}

    def prepare(self, ctx) -> Any:
        return None

    def step(self, ctx, state, generator: torch.Generator) -> float:
        raise NotImplementedError

    # whether --precision auto may pick bf16 for this method's passes (where it is native)
    bf16_auto: bool = True

    def bench(self, ctx, kind: str, precision: str):
        """A zero-argument step of pass ``kind`` ("real": a no-grad forward of one class batch
        of real-sized images; "syn": a forward + backward of the synthetic batch) at
        ``precision``, on throwaway weights and inputs, for ``--precision auto`` to time."""
        info, classes = ctx.info, ctx.classes
        g = torch.Generator().manual_seed(0)
        net = ctx.build_net(g, frozen=kind == "real")
        n = ctx.n_real if kind == "real" else ctx.n_syn
        x = ctx.memory_format(torch.randn(classes * n, info.channels, *info.size, generator=g)
                              .to(ctx.device))
        ac = ctx.compute.at(kind, precision).autocast(kind)

        def real():
            with torch.no_grad(), ac():
                net.embed(x)

        def syn():
            with ac():
                loss = net(x).float().square().mean()
            loss.backward()
        return real if kind == "real" else syn

    def iteration_flops(self, ctx) -> int:
        raise NotImplementedError

    def layout_knob(self, ctx) -> Any:
        """An object whose ``layout`` attribute (``autotune.LAYOUTS``: "inductor" or "nchw"),
        read at each call, sets the memory layout of the compiled synthetic pass, for
        ``--precision auto`` to time both on a CPU; None where the method has no such choice."""
        return None


METHODS: Registry[Method] = Registry("method")


def register_method(name: str) -> Callable[[type], type]:
    """Class decorator: register an instance of the class under ``name``."""
    return METHODS.register_class(name)
