"""Distribution Matching (DM; Zhao & Bilen, "Dataset Condensation with Distribution
Matching", WACV 2023): make the mean embedding of each class's synthetic images match that
of its real images in randomly initialised networks."""
from __future__ import annotations

import torch

from .base import register_method
from .matching import EmbeddingMatching


def dm_loss(real_means: torch.Tensor, syn_means: torch.Tensor) -> torch.Tensor:
    """DM's objective (Zhao & Bilen, 2023, Eq. 5, the empirical MMD with a linear kernel in
    the embedding space), summed over classes as in the reference code:
    L = sum_c || mean_i psi(A(x_real_c,i)) - mean_j psi(A(s_c,j)) ||^2."""
    return (real_means.float() - syn_means.float()).pow(2).sum()


@register_method("dm")
class DM(EmbeddingMatching):
    default_iterations = 20000
    default_batch_real = 256
    order, color = 3, "#1f77b4"
    citation = ("Zhao & Bilen, Dataset Condensation with Distribution Matching, WACV 2023")
    summary = "class-mean embeddings of real and synthetic batches in random networks (MMD)"

    def features(self, net, x, options):
        return (net.embed(x),)

    def match(self, real_means, syn_means, options):
        return dm_loss(real_means[0], syn_means[0])
