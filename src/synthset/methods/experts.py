"""Trained experts to match in: DANCE's pseudo long-term distribution alignment and its
distribution calibration (Zhang, Li, Wang, Zhou, Li & Tao, "DANCE: Dual-View Distribution
Alignment for Dataset Condensation", IJCAI 2024), an option of the matching methods
(``MatchingOptions.experts``).

DM matches in freshly initialised networks, whose embeddings separate classes only
coarsely. DANCE trains a few networks ("experts") on the real training data once, keeps each
at its initial and its final weights, and every iteration matches in a network whose weights
are an interpolation of one expert's two states with a random mixing weight: the matched
embeddings range from random to fully trained at no training cost per iteration. Its
calibration term, a cross-entropy of the synthetic images through a trained expert, keeps
each synthetic image inside its class (IDM's class-aware regulariser is the same term through
its partially trained networks).

The experts are trained once per (data, model, seed, schedule, precision) and cached on disk
beside the herding feature network, keyed by the training split's fingerprint; their training
time and FLOPs count in every set that uses them (recorded from the training, also when the
cache serves them).
"""
from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from ..atomic import write_safetensors
from ..data.base import normalize


def interpolate(initial: dict[str, torch.Tensor], final: dict[str, torch.Tensor],
                lam: float) -> dict[str, torch.Tensor]:
    """DANCE's interpolated expert (Zhang et al., IJCAI 2024, Sec. 3.2, Eq. 6):
    theta(lambda) = theta_0 + lambda (theta_T - theta_0), per tensor, with lambda in [0, 1]
    (0: the expert at initialisation, 1: trained)."""
    return {k: initial[k] + lam * (final[k] - initial[k]) for k in initial}


def calibration_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """DANCE's distribution calibration (Zhang et al., IJCAI 2024, Sec. 3.3, Eq. 8) and IDM's
    class-aware regulariser (Zhao et al., CVPR 2023, Eq. 6): the mean cross-entropy of the
    synthetic images' logits under a trained network against their labels."""
    return F.cross_entropy(logits.float(), labels)


def train_expert(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, mean, std, *,
                 steps: int, batch: int, lr: float, generator: torch.Generator,
                 autocast: Callable = contextlib.nullcontext) -> float:
    """``steps`` SGD steps (momentum 0.9, weight decay 5e-4, the evaluation protocol's, lr x0.1
    at half) of ``net`` on random batches of the uint8 ``images``; returns the last loss."""
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [max(1, steps // 2)], 0.1)
    loss = torch.zeros(())
    for _ in range(steps):
        idx = torch.randint(len(labels), (batch,), generator=generator).to(images.device)
        with autocast():
            loss = F.cross_entropy(net(normalize(images[idx], mean, std)).float(), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return float(loss.detach())


class ExpertBank:
    """``count`` experts, each at its initial and final weights, and the two networks a
    step uses: ``net`` (weights set to an interpolation by ``sample``) and ``trained()`` (the
    sampled expert trained, for the calibration term). ``build(generator)`` makes a frozen
    network; training unfreezes it. Draws come from the run's generator, so a resumed run
    samples exactly what an uninterrupted one does."""

    def __init__(self, *, count: int, steps: int, batch: int, lr: float, mix: float,
                 build: Callable[[Optional[torch.Generator]], torch.nn.Module],
                 seeds: list[int], images: torch.Tensor, labels: torch.Tensor, mean, std,
                 cache: Optional[Path], key: str, precision: str, autocast: Callable,
                 log: Callable[[str], None] = print) -> None:
        if count < 1 or steps < 1 or batch < 1 or lr <= 0 or not 0 < mix <= 1:
            raise ValueError(f"experts: count, steps and batch must be >= 1, lr > 0 and mix in "
                             f"(0, 1] (got {count}, {steps}, {batch}, {lr}, {mix})")
        self.mix = mix
        self.initial: list[dict[str, torch.Tensor]] = []
        self.final: list[dict[str, torch.Tensor]] = []
        self.train_seconds = 0.0
        self.cached = 0
        for k in range(count):
            net = build(torch.Generator().manual_seed(seeds[k]))
            init = {n: v.detach().clone() for n, v in net.state_dict().items()}
            path = cache / f"{key}-k{k}.safetensors" if cache is not None else None
            final, seconds = _load(path)
            if final is None:
                for p in net.parameters():
                    p.requires_grad_(True)
                t0 = time.perf_counter()
                g = torch.Generator().manual_seed(seeds[k] + 1)
                loss = train_expert(net, images, labels.to(images.device), mean, std, steps=steps,
                                    batch=batch, lr=lr, generator=g, autocast=autocast)
                seconds = time.perf_counter() - t0
                final = {n: v.detach().clone() for n, v in net.state_dict().items()}
                log(f"expert {k + 1}/{count}: {steps} steps of {batch} real images in "
                    f"{seconds:.1f} s ({precision}), last loss {loss:.3f}")
                _save(path, final, seconds)
            else:
                self.cached += 1
                final = {n: v.to(images.device) for n, v in final.items()}
            self.train_seconds += seconds
            self.initial.append(init)
            self.final.append(final)
        # ``build`` gives frozen networks (no parameter gradients): the matched one and the
        # trained one the calibration reads
        self.net, self.final_net = build(None), build(None)
        self.k, self._loaded_final = 0, None
        if self.cached:
            log(f"experts: {self.cached} of {count} loaded from {cache}")

    def sample(self, generator: torch.Generator) -> tuple[int, float]:
        """Draw an expert and a mixing weight lambda ~ U[0, mix]; load the interpolation into
        ``net``."""
        k = int(torch.randint(len(self.initial), (1,), generator=generator))
        lam = float(torch.rand((), generator=generator)) * self.mix
        with torch.no_grad():
            self.net.load_state_dict(interpolate(self.initial[k], self.final[k], lam))
        self.k = k
        return k, lam

    def trained(self) -> torch.nn.Module:
        """The sampled expert at its trained weights (loaded once per draw, and only by the
        runs that use it: the calibration term through the expert)."""
        if self._loaded_final != self.k:
            with torch.no_grad():
                self.final_net.load_state_dict(self.final[self.k])
            self._loaded_final = self.k
        return self.final_net


def _load(path: Optional[Path]) -> tuple[Optional[dict], float]:
    if path is None or not path.exists():
        return None, 0.0
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="pt") as f:
            seconds = float(json.loads((f.metadata() or {}).get("train_seconds", "0")))
            return {k: f.get_tensor(k) for k in f.keys()}, seconds
    except Exception:  # a corrupt cache entry is retrained, not trusted
        return None, 0.0


def _save(path: Optional[Path], weights: dict, seconds: float) -> None:
    if path is None:
        return
    # atomic: concurrent runs never read half a file
    write_safetensors(path, {k: v.detach().cpu().contiguous() for k, v in weights.items()},
                      metadata={"train_seconds": json.dumps(seconds)})
