"""Matching methods (DM, DataDAM): a method is the per-image features it matches, the loss
on their per-class means, and its defaults. The outer loop that optimises the synthetic
images lives in ``synthset.distill.match_loop``."""
from __future__ import annotations

import contextlib

import torch

from ..device import onednn_off
from .base import Method, MethodOutput


def class_means(features: torch.Tensor, classes: int) -> torch.Tensor:
    """(classes * n, ...) per-image features, class-major -> (classes, d) per-class means."""
    return features.reshape(classes, -1, features[0].numel()).mean(1)


@torch.no_grad()
def features_no_grad(features, net, x: torch.Tensor, *, chunk: int = 0,
                     autocast=None) -> tuple[torch.Tensor, ...]:
    """``features(net, x)`` without autograd (the real batch carries no gradient to the
    synthetic images), in chunks of ``chunk`` images (0 = all at once)."""
    autocast = autocast or contextlib.nullcontext
    step = x.shape[0] if chunk <= 0 else chunk
    parts = []
    for i in range(0, x.shape[0], step):
        with autocast():
            parts.append(tuple(f.float() for f in features(net, x[i:i + step])))
    return tuple(torch.cat(fs) for fs in zip(*parts))


def embed_no_grad(net, x: torch.Tensor, *, chunk: int = 0, autocast=None) -> torch.Tensor:
    """No-grad embeddings of ``x`` (see ``features_no_grad``)."""
    return features_no_grad(lambda n, v: (n.embed(v),), net, x, chunk=chunk, autocast=autocast)[0]


class _Features(torch.nn.Module):
    def __init__(self, net, features) -> None:
        super().__init__()
        self.net = net
        self.features = features

    def forward(self, x: torch.Tensor):
        return self.features(self.net, x)


def _weights(net) -> dict[str, torch.Tensor]:
    """``net``'s parameters and buffers, keyed as ``_Features`` names them (the compiled
    functions' inputs)."""
    return {f"net.{k}": v for k, v in [*net.named_parameters(), *net.named_buffers()]}


class CompiledEmbed:
    """A torch.compile'd no-grad ``features(net, x)`` (default: the embedding), compiled once
    per architecture and reused for every freshly initialised network by passing that
    network's weights as inputs (``torch.func.functional_call``), so a new network per
    iteration costs no recompile.

    On CPU it runs with oneDNN convolutions off and inductor's layout optimisation off:
    on the 2-core AVX2 machine that made the 2,560-image real forward 2.56x faster than
    eager (benchmarks/embed_speed.py); the maths is the same fp32 convolution.
    """

    def __init__(self, template, device: torch.device, *, chunk: int = 640, features=None) -> None:
        from torch.func import functional_call

        features = features or (lambda net, x: (net.embed(x),))
        self.wrapper = _Features(template, features)
        self.cpu = device.type == "cpu"
        self.chunk = chunk
        wrapper = self.wrapper
        self.fn = torch.compile(lambda state, x: functional_call(wrapper, state, (x,)))

    def _context(self):
        stack = contextlib.ExitStack()
        stack.enter_context(torch.no_grad())
        if self.cpu:
            import torch._inductor.config as inductor_config
            stack.enter_context(onednn_off())
            stack.enter_context(inductor_config.patch(layout_optimization=False))
        return stack

    def features(self, net, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        state = _weights(net)
        with self._context():
            parts = [tuple(f.float() for f in self.fn(state, x[i:i + self.chunk]))
                     for i in range(0, x.shape[0], self.chunk)]
        return tuple(torch.cat(fs) for fs in zip(*parts))

    def __call__(self, net, x: torch.Tensor) -> torch.Tensor:
        return self.features(net, x)[0]


class CompiledSynLoss:
    """A torch.compile'd ``syn_loss``: the synthetic batch's features, their class means and
    the matching loss in one graph with autograd (AOTAutograd compiles the backward too), so
    inductor fuses the element-wise work (norms, activations, attention maps) forward and
    backward. Like ``CompiledEmbed`` it is compiled once per architecture and takes each
    fresh network's weights as inputs. Unlike the no-grad real path it keeps oneDNN
    convolutions on: on the 2-core AVX2 machine that was the faster choice for the forward
    + backward at IPC 10 (DataDAM: 0.44 s vs 0.64 s with oneDNN off, eager 0.77 s) and level at
    IPC 50 (benchmarks/syn_speed.py)."""

    def __init__(self, method, template, config, classes: int) -> None:
        from torch.func import functional_call

        wrapper = _Features(template, lambda n, x: method.features(n, x, config))

        def loss(state, syn, real_means):
            feats = functional_call(wrapper, state, (syn,))
            return method.match(real_means, tuple(class_means(f.float(), classes) for f in feats),
                                config)

        self.fn = torch.compile(loss)

    def __call__(self, net, real_means: tuple[torch.Tensor, ...], syn: torch.Tensor) -> torch.Tensor:
        state = _weights(net)
        return self.fn(state, syn, tuple(real_means))


class MatchingMethod(Method):
    """Subclasses define ``features`` (what is averaged per class) and ``match`` (the loss
    on the class means); ``loss`` runs the real batch without autograd and the synthetic
    batch with it."""

    default_iterations: int = 1000
    default_batch_real: int = 256

    def features(self, net, x: torch.Tensor, config) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def match(self, real_means: tuple[torch.Tensor, ...], syn_means: tuple[torch.Tensor, ...],
              config) -> torch.Tensor:
        raise NotImplementedError

    def real_means(self, net, real: torch.Tensor, classes: int, *, config=None, chunk: int = 0,
                   autocast=None, embed_real=None) -> tuple[torch.Tensor, ...]:
        """Per-class means of the real batch's features, without autograd; ``embed_real(net,
        x)``, if given, replaces the eager path (the compiled fast path, see ``CompiledEmbed``)."""
        if embed_real is not None:
            real_f = embed_real.features(net, real)
        else:
            real_f = features_no_grad(lambda n, v: self.features(n, v, config), net, real,
                                      chunk=chunk, autocast=autocast)
        return tuple(class_means(f, classes) for f in real_f)

    def syn_loss(self, net, real_means: tuple[torch.Tensor, ...], syn: torch.Tensor, classes: int,
                 *, config=None, autocast=None) -> torch.Tensor:
        """The matching loss of the synthetic batch (with autograd) against ``real_means``."""
        autocast = autocast or contextlib.nullcontext
        with autocast():
            syn_f = self.features(net, syn, config)
        return self.match(real_means, tuple(class_means(f.float(), classes) for f in syn_f), config)

    def loss(self, net, real: torch.Tensor, syn: torch.Tensor, classes: int, *, config=None,
             chunk: int = 0, autocast=None, embed_real=None) -> torch.Tensor:
        """The matching loss: ``syn_loss`` against the real batch's ``real_means``."""
        means = self.real_means(net, real, classes, config=config, chunk=chunk,
                                autocast=autocast, embed_real=embed_real)
        return self.syn_loss(net, means, syn, classes, config=config, autocast=autocast)

    def run(self, train, config, *, device, generator, log=print, run_dir=None,
            resume: bool = False, data=None) -> MethodOutput:
        from ..distill import match_loop  # the loop imports the method registry
        return match_loop(self, train, config, device=device, generator=generator, log=log,
                          run_dir=run_dir, resume=resume, data=data)
