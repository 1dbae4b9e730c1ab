"""Distribution Matching (DM; Zhao & Bilen, "Dataset Condensation with Distribution
Matching", WACV 2023): make the mean embedding of each class's synthetic images match that
of its real images in randomly initialised networks."""
from __future__ import annotations

import torch

from .matching import MatchingMethod, class_means

__all__ = ["DM", "class_means", "dm_loss"]


def dm_loss(real_means: torch.Tensor, syn_means: torch.Tensor) -> torch.Tensor:
    """DM's objective (Zhao & Bilen, 2023, Eq. 5, the empirical MMD with a linear kernel in
    the embedding space), summed over classes as in the reference code:
    L = sum_c || mean_i psi(A(x_real_c,i)) - mean_j psi(A(s_c,j)) ||^2."""
    return (real_means.float() - syn_means.float()).pow(2).sum()


class DM(MatchingMethod):
    name = "dm"
    default_iterations = 20000
    default_batch_real = 256

    def features(self, net, x, config=None):
        return (net.embed(x),)

    def match(self, real_means, syn_means, config=None):
        return dm_loss(real_means[0], syn_means[0])
