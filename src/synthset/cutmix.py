"""CutMix for training on a set (Yun et al., "CutMix: Regularization Strategy to Train Strong
Classifiers with Localizable Features", ICCV 2019), as IDC's evaluation protocol uses it (Kim et
al., ICML 2022: DSA without cutout, plus CutMix on half the batches, beta 1). The labels stay
hard class labels, mixed by the pasted area in the loss; no teacher is involved."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def cutmix_box(h: int, w: int, lam: float, cy: float, cx: float) -> tuple[int, int, int, int]:
    """The pasted box (rows r0:r1, columns c0:c1) of CutMix (Yun et al. 2019, Sec. 3.1): sides
    ``sqrt(1 - lam)`` of the image's, centred at (``cy`` x h, ``cx`` x w) for ``cy``, ``cx``
    uniform in [0, 1), clipped at the borders."""
    ch, cw = int(h * math.sqrt(1.0 - lam)), int(w * math.sqrt(1.0 - lam))
    y, x = int(cy * h), int(cx * w)
    r0, r1 = max(0, y - ch // 2), min(h, y + ch // 2)
    c0, c1 = max(0, x - cw // 2), min(w, x + cw // 2)
    return r0, r1, c0, c1


def cutmix(x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, float]:
    """One CutMix of a batch (Yun et al. 2019, Eq. 1): a box of each image replaced by the same
    box of another image of the batch, ``lam ~ Beta(1, 1)``. Returns the mixed batch, the
    permutation that gave each image its patch, and ``lam`` recomputed from the clipped box's
    area (the weight of each image's own label)."""
    dev = generator.device
    lam, cy, cx = torch.rand(3, generator=generator, device=dev).tolist()
    perm = torch.randperm(x.shape[0], generator=generator, device=dev).to(x.device)
    h, w = x.shape[-2:]
    r0, r1, c0, c1 = cutmix_box(h, w, lam, cy, cx)
    out = x.clone()
    out[..., r0:r1, c0:c1] = x[perm][..., r0:r1, c0:c1]
    return out, perm, 1.0 - (r1 - r0) * (c1 - c0) / (h * w)


def cutmix_loss(logits: torch.Tensor, y: torch.Tensor, perm: torch.Tensor, lam: float) -> torch.Tensor:
    """CutMix's loss (Yun et al. 2019, Eq. 1, its label mixing): ``lam`` x the cross-entropy
    with the image's own label + (1 - ``lam``) x that with the pasted image's label."""
    return lam * F.cross_entropy(logits, y) + (1.0 - lam) * F.cross_entropy(logits, y[perm])
