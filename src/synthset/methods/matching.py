"""Matching methods (DM, DataDAM): a method is its loss and its defaults; the outer loop
that optimises the synthetic images lives in ``synthset.distill.match_loop``."""
from __future__ import annotations

import contextlib

import torch

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


class MatchingMethod(Method):
    default_iterations: int = 1000
    default_batch_real: int = 256

    def loss(self, net, real: torch.Tensor, syn: torch.Tensor, classes: int, *, chunk: int = 0,
             autocast=None) -> torch.Tensor:
        raise NotImplementedError

    def run(self, train, config, *, device, generator, log=print, run_dir=None,
            resume: bool = False, data=None) -> MethodOutput:
        from ..distill import match_loop  # the loop imports the method registry
        return match_loop(self, train, config, device=device, generator=generator, log=log,
                          run_dir=run_dir, resume=resume, data=data)
