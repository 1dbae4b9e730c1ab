"""Distribution Matching (DM; Zhao & Bilen, "Dataset Condensation with Distribution
Matching", WACV 2023): make the mean embedding of each class's synthetic images match that
of its real images in randomly initialised networks."""
from __future__ import annotations

import contextlib

import torch

from .matching import MatchingMethod, embed_no_grad


def class_means(embeddings: torch.Tensor, classes: int) -> torch.Tensor:
    """(classes * n, d) embeddings, class-major -> (classes, d) per-class means."""
    return embeddings.reshape(classes, -1, embeddings.shape[-1]).mean(1)


def dm_loss(real_means: torch.Tensor, syn_means: torch.Tensor) -> torch.Tensor:
    """DM's objective (Zhao & Bilen, 2023, Eq. 5, the empirical MMD with a linear kernel in
    the embedding space), summed over classes as in the reference code:
    L = sum_c || mean_i psi(A(x_real_c,i)) - mean_j psi(A(s_c,j)) ||^2."""
    return (real_means.float() - syn_means.float()).pow(2).sum()


class DM(MatchingMethod):
    name = "dm"
    default_iterations = 20000
    default_batch_real = 256

    def loss(self, net, real: torch.Tensor, syn: torch.Tensor, classes: int, *, chunk: int = 0,
             autocast=None, embed_real=None) -> torch.Tensor:
        autocast = autocast or contextlib.nullcontext
        if embed_real is not None:
            real_emb = embed_real(net, real)
        else:
            real_emb = embed_no_grad(net, real, chunk=chunk, autocast=autocast)
        with autocast():
            syn_emb = net.embed(syn)
        return dm_loss(class_means(real_emb, classes), class_means(syn_emb, classes))
