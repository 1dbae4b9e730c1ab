"""Pure functions of the engine's image optimisation: the lr schedule and iterate averaging."""
from __future__ import annotations

import math

import torch


def cosine_lr(base: float, iteration: int, total: int) -> float:
    """Cosine annealing without restarts (Loshchilov & Hutter, ICLR 2017, Eq. 5 with
    eta_min = 0): base * (1 + cos(pi * iteration / total)) / 2, from ``base`` at iteration 0
    towards 0 at ``total``. A function of the iteration alone, so a resumed run follows the
    same schedule."""
    return base * 0.5 * (1.0 + math.cos(math.pi * iteration / max(total, 1)))


def ema_update(avg: torch.Tensor, x: torch.Tensor, decay: float) -> torch.Tensor:
    """In place, avg <- decay * avg + (1 - decay) * x: the exponential form of Polyak-Ruppert
    iterate averaging (Polyak & Juditsky, SIAM J. Control Optim. 1992, who average the iterates
    uniformly; the exponential weights forget the starting point). Applied to the
    synthetic images, it averages out the noise of the last steps, each taken in one random
    network on one real batch."""
    return avg.mul_(decay).add_(x, alpha=1.0 - decay)
