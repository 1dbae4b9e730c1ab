"""FLOP counting with ``torch.utils.flop_counter.FlopCounterMode``.

Convention: one multiply-add = 2 FLOPs (the counter's convention). The counter ignores
ops it has no formula for (norms, pooling, activations): they are element-wise and
small next to the convolutions; the closed forms below make the same choice.
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_flops(fn: Callable[[], object]) -> int:
    """Total FLOPs of everything ``fn`` runs (forward and, if it calls it, backward)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def conv2d_flops(cin: int, cout: int, k: int, h_out: int, w_out: int, batch: int = 1) -> int:
    """Closed form for a conv forward: 2 * Cin * k^2 * Cout * H_out * W_out per image."""
    return 2 * cin * k * k * cout * h_out * w_out * batch


def linear_flops(fin: int, fout: int, batch: int = 1) -> int:
    """Closed form for a linear forward: 2 * in * out per sample."""
    return 2 * fin * fout * batch


def inference_flops(net: torch.nn.Module, input_shape: tuple[int, ...]) -> int:
    """Forward FLOPs for ONE image of shape (C, H, W)."""
    was = net.training
    net.eval()
    x = torch.zeros(1, *input_shape, device=next(net.parameters()).device)
    with torch.no_grad():
        f = count_flops(lambda: net(x))
    net.train(was)
    return f


def train_step_flops(net: torch.nn.Module, input_shape: tuple[int, ...], batch: int = 2) -> float:
    """Forward + backward FLOPs per training image (measured on a small batch, the
    input needs no gradient, as in evaluation training). Counted on a meta-device copy: the
    network's own arithmetic, not a CPU kernel's rewriting of it (``FewChannelConv2d`` folds
    its bias into the weight product there)."""
    net = copy.deepcopy(net).to("meta")
    x = torch.zeros(batch, *input_shape, device="meta")
    y = torch.zeros(batch, dtype=torch.long, device="meta")

    def step():
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()

    return count_flops(step) / batch
