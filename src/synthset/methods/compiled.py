"""Compiled fast paths of the engine's methods: torch.compile'd functions compiled once per
architecture and fed each freshly initialised network's weights as inputs
(``torch.func.functional_call``), so a new network per iteration costs no recompile."""
from __future__ import annotations

import contextlib
import types
from typing import Callable

import torch
import torch.nn.functional as F

from ..compute import autocast
from ..device import onednn_off


class _Features(torch.nn.Module):
    def __init__(self, net, features) -> None:
        super().__init__()
        self.net = net
        self.features = features

    def forward(self, x: torch.Tensor):
        return self.features(self.net, x)


def own_code(fn: Callable) -> Callable:
    """``fn`` with a code object of its own, for ``torch.compile``.

    Dynamo caches compilations per code object and, past ``recompile_limit`` (8) guard
    variants of one, runs it eagerly from then on. Every instance of a class below builds
    its function from the same ``def`` (one code object), and a run's precision and layout
    autotuning compiles up to four variants: without this, the third distillation in one
    process (a notebook, a benchmark) silently fell back to eager, 2x slower per iteration.
    """
    return types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__,
                              fn.__defaults__, fn.__closure__)


def weights(net) -> dict[str, torch.Tensor]:
    """``net``'s parameters and buffers, keyed as ``_Features`` names them (the compiled
    functions' inputs)."""
    return {f"net.{k}": v for k, v in [*net.named_parameters(), *net.named_buffers()]}


class CompiledEmbed:
    """A torch.compile'd no-grad ``features(net, x)`` (default: the embedding), in chunks.

    In fp32 on CPU it runs with oneDNN convolutions off and inductor's layout optimisation
    off: on a 2-core AVX2 AMD EPYC that made the 2,560-image real forward 2.56x faster than
    eager (benchmarks/embed_speed.py); the maths is the same fp32 convolution. In bf16 it
    runs under autocast with oneDNN on (its bf16 kernels; without them bf16 convolutions
    were 8x slower on an AVX-512 BF16 EPYC).
    """

    def __init__(self, template, device: torch.device, *, chunk: int = 640, features=None) -> None:
        from torch.func import functional_call

        features = features or (lambda net, x: (net.embed(x),))
        wrapper = _Features(template, features)
        self.cpu = device.type == "cpu"
        self.device_type = device.type
        self.chunk = chunk
        self.fn = torch.compile(own_code(lambda state, x: functional_call(wrapper, state, (x,))))

    def _context(self, precision: str):
        stack = contextlib.ExitStack()
        stack.enter_context(torch.no_grad())
        if precision == "bf16":
            stack.enter_context(autocast(torch.device(self.device_type), "bf16")())
        elif self.cpu:
            import torch._inductor.config as inductor_config
            stack.enter_context(onednn_off())
            stack.enter_context(inductor_config.patch(layout_optimization=False))
        return stack

    def features(self, net, x: torch.Tensor, precision: str = "fp32") -> tuple[torch.Tensor, ...]:
        state = weights(net)
        with self._context(precision):
            parts = [tuple(f.float() for f in self.fn(state, x[i:i + self.chunk]))
                     for i in range(0, x.shape[0], self.chunk)]
        return tuple(torch.cat(fs) for fs in zip(*parts))

    def __call__(self, net, x: torch.Tensor) -> torch.Tensor:
        return self.features(net, x)[0]


class CompiledSynLoss:
    """A torch.compile'd synthetic-batch loss: ``loss_of(features(net, syn), real_means)`` in
    one graph with autograd (AOTAutograd compiles the backward too), so inductor fuses the
    element-wise work (norms, activations, attention maps) forward and backward. It keeps
    oneDNN convolutions on: on a 2-core AVX2 AMD EPYC that was the faster choice for the
    forward + backward at IPC 10 (DataDAM: 0.44 s vs 0.64 s with oneDNN off, eager 0.77 s)
    and level at IPC 50 (benchmarks/syn_speed.py)."""

    def __init__(self, template, features: Callable, loss_of: Callable) -> None:
        from torch.func import functional_call

        wrapper = _Features(template, features)

        def loss(state, syn, real_means):
            return loss_of(functional_call(wrapper, state, (syn,)), real_means)

        self._loss = loss
        self._fns: dict[str, Callable] = {}
        # "inductor": inductor's layout optimisation (channels-last convolutions), "nchw":
        # off; ``autotune.choose_layout`` times both and sets the faster
        self.layout = "inductor"

    def __call__(self, net, real_means: tuple[torch.Tensor, ...], syn: torch.Tensor) -> torch.Tensor:
        fn = self._fns.get(self.layout)
        if fn is None:  # one compilation per layout, each reused for every network
            fn = self._fns[self.layout] = torch.compile(
                own_code(self._loss), options={"layout_optimization": self.layout == "inductor"})
        return fn(weights(net), syn, tuple(real_means))


def compiled_cross_entropy(template: torch.nn.Module):
    """A torch.compile'd (weights, buffers, x, y) -> cross-entropy with autograd, compiled
    once per architecture and fed each network's weights (the network pool's training)."""
    from torch.func import functional_call

    def loss(params, buffers, x, y):
        return F.cross_entropy(functional_call(template, {**params, **buffers}, (x,)), y)

    return torch.compile(own_code(loss))
