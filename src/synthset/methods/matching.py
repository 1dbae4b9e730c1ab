"""Matching methods (DM, DataDAM): a method is its loss and its defaults; the outer loop
that optimises the synthetic images lives in ``synthset.distill.match_loop``."""
from __future__ import annotations

import contextlib

import torch

from ..device import onednn_off
from .base import Method, MethodOutput


@torch.no_grad()
def embed_no_grad(net, x: torch.Tensor, *, chunk: int = 0, autocast=None) -> torch.Tensor:
    """Embeddings of the real batch without autograd (they carry no gradient to the
    synthetic images), in chunks of ``chunk`` images (0 = all at once)."""
    autocast = autocast or contextlib.nullcontext
    if chunk <= 0 or chunk >= x.shape[0]:
        with autocast():
            return net.embed(x).float()
    outs = []
    for i in range(0, x.shape[0], chunk):
        with autocast():
            outs.append(net.embed(x[i:i + chunk]).float())
    return torch.cat(outs)


class _Embedder(torch.nn.Module):
    def __init__(self, net) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.embed(x)


class CompiledEmbed:
    """A torch.compile'd no-grad embedding, compiled once per architecture and reused for
    every freshly initialised network by passing that network's weights as inputs
    (``torch.func.functional_call``), so a new network per iteration costs no recompile.

    On CPU it runs with oneDNN convolutions off and inductor's layout optimisation off:
    on the 2-core AVX2 machine that made the 2,560-image real forward 2.56x faster than
    eager (benchmarks/embed_speed.py); the maths is the same fp32 convolution.
    """

    def __init__(self, template, device: torch.device, *, chunk: int = 640) -> None:
        from torch.func import functional_call

        self.wrapper = _Embedder(template)
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

    def __call__(self, net, x: torch.Tensor) -> torch.Tensor:
        state = {f"net.{k}": v for k, v in net.named_parameters()}
        state.update({f"net.{k}": v for k, v in net.named_buffers()})
        with self._context():
            return torch.cat([self.fn(state, x[i:i + self.chunk]).float()
                              for i in range(0, x.shape[0], self.chunk)])


class MatchingMethod(Method):
    default_iterations: int = 1000
    default_batch_real: int = 256

    def loss(self, net, real: torch.Tensor, syn: torch.Tensor, classes: int, *, chunk: int = 0,
             autocast=None, embed_real=None) -> torch.Tensor:
        """The matching loss; ``embed_real(net, x)``, if given, replaces the eager no-grad
        embedding of the real batch (the compiled fast path)."""
        raise NotImplementedError

    def run(self, train, config, *, device, generator, log=print, run_dir=None,
            resume: bool = False, data=None) -> MethodOutput:
        from ..distill import match_loop  # the loop imports the method registry
        return match_loop(self, train, config, device=device, generator=generator, log=log,
                          run_dir=run_dir, resume=resume, data=data)
