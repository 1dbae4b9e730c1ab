"""The compute policy of a run: where it computes and how each pass computes there.

A command resolves it once per run into a ``Compute``: the device (``--device``, a
``ComputeConfig``), each pass's arithmetic (``--precision``; ``auto`` timed per pass by
``synthset.autotune`` and cached), compilation and memory format (``--compile``,
``--channels-last``; the run's ``EngineConfig`` or ``TrainConfig`` holds what was asked).
Distillation, evaluation, the full-data reference, the audit and the distillation's
``--eval-every`` evaluations all compute through it, and autocast is built here only.

The passes: ``real`` (a distillation's no-grad forward of the real batch), ``syn`` (its
synthetic forward + backward), ``train`` (the protocol's training step; testing runs in the
same arithmetic).
"""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from typing import Callable, ContextManager, Mapping, Optional

import torch

RESOLVED = ("fp32", "bf16")


def autocast(device: torch.device, precision: str) -> Callable[[], ContextManager]:
    """A factory of autocast contexts, the one place autocast is built: bf16 autocast for
    ``precision == "bf16"``, none for "fp32" (the reference)."""
    if precision not in RESOLVED:
        raise ValueError(f"precision must be resolved to fp32 or bf16 before a pass runs, "
                         f"got {precision!r}")
    if precision == "bf16":
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


@dataclass(frozen=True)
class Compute:
    """How one run computes, resolved: ``precision`` maps each pass to fp32 or bf16 (never
    auto); ``choices`` keeps what autotune measured or read for each pass (recorded with
    the run's results)."""

    device: torch.device = torch.device("cpu")
    precision: Mapping[str, str] = field(default_factory=dict)
    compile: bool = False
    channels_last: bool = False
    choices: Mapping[str, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = {p: v for p, v in self.precision.items() if v not in RESOLVED}
        if bad:
            raise ValueError(f"Compute holds resolved precisions only (fp32, bf16), got {bad}")

    def precision_of(self, kind: str) -> str:
        return self.precision.get(kind, "fp32")

    def autocast(self, kind: str) -> Callable[[], ContextManager]:
        """The autocast factory of pass ``kind``."""
        return autocast(self.device, self.precision_of(kind))

    def at(self, kind: str, precision: str) -> "Compute":
        """The same policy with pass ``kind`` at ``precision`` (autotune's candidates)."""
        return dataclasses.replace(self, precision={**self.precision, kind: precision})

    def layout(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` on the device in the policy's memory format."""
        x = x.to(self.device)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def place(self, net: torch.nn.Module) -> torch.nn.Module:
        """``net`` on the device in the policy's memory format."""
        net = net.to(self.device)
        return net.to(memory_format=torch.channels_last) if self.channels_last else net

    def compiled(self, module):
        return torch.compile(module) if self.compile else module


def fixed(device: torch.device, requested: str = "fp32", *, kinds: tuple[str, ...] = ("train",),
          compile: bool = False, channels_last: bool = False) -> Compute:
    """A policy without timing: ``requested`` for every pass, ``auto`` read as fp32 (for a
    low-level call that has nothing to time, e.g. a cached feature network's training)."""
    p = requested if requested in RESOLVED else "fp32"
    return Compute(device=device, precision={k: p for k in kinds}, compile=compile,
                   channels_last=channels_last)


def given(compute: Optional[Compute], device: Optional[torch.device], cfg=None,
          kind: str = "train") -> Compute:
    """``compute``; for a call that names only a device (or nothing: the CPU), the policy
    ``cfg`` (a ``TrainConfig``) asks for there, untimed (``fixed``)."""
    if compute is not None:
        return compute
    return fixed(device or torch.device("cpu"), getattr(cfg, "precision", "fp32"), kinds=(kind,),
                 compile=getattr(cfg, "compile", False),
                 channels_last=getattr(cfg, "channels_last", False))


def resolve(device: torch.device, requested: str, *, compile: bool = False,
            channels_last: bool = False,
            passes: Mapping[str, tuple[str, str, Callable[[str], Callable[[], object]]]],
            allow_bf16: Optional[Mapping[str, bool]] = None,
            log: Callable[[str], None] = print) -> Compute:
    """Resolve ``requested`` (fp32, bf16 or auto) for each pass: ``passes`` maps a pass to
    (autotune kind, the detail its cache is keyed by, bench(precision) -> a zero-argument
    step). ``allow_bf16[kind]`` False keeps auto at fp32 for that pass."""
    from .autotune import choose
    choices = {}
    for kind, (tune_kind, detail, bench) in passes.items():
        asked = requested if requested != "auto" or (allow_bf16 or {}).get(kind, True) else "fp32"
        choices[kind] = choose(tune_kind, detail, device, asked, bench, log=log)
    return Compute(device=device, precision={k: c["precision"] for k, c in choices.items()},
                   compile=compile, channels_last=channels_last, choices=choices)
