"""Multi-formation (Kim et al., "Dataset Condensation via Efficient Synthetic-Data
Parameterization" (IDC), ICML 2022, Sec. 3.1): each stored H x W synthetic image holds a
factor x factor grid of (H / factor) x (W / factor) images, each upsampled back to H x W
to train on. The storage budget (pixels per class) is unchanged; a model trains on
factor^2 times as many, lower-resolution, images. IDM (Zhao et al., CVPR 2023) uses it with
distribution matching (factor 2).

``decode`` is differentiable, so the matching loss reaches the stored pixels through it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def tile_size(h: int, w: int, factor: int) -> tuple[int, int]:
    if factor < 1 or h % factor or w % factor:
        raise ValueError(f"factor {factor} must be >= 1 and divide the image size {h}x{w}; "
                         f"choose a divisor (MNIST 28: 1, 2, 4, 7; MHIST 64: 1, 2, 4, ...)")
    return h // factor, w // factor


def decode(images: torch.Tensor, labels: torch.Tensor, factor: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C, H, W) stored images -> (N * factor^2, C, H, W) training images and their labels:
    tile (i, j) of stored image n becomes image n * factor^2 + i * factor + j, bilinearly
    upsampled to H x W (IDC, Sec. 3.1). Class-major order is kept. factor 1 is the identity."""
    if factor == 1:
        return images, labels
    n, c, h, w = images.shape
    th, tw = tile_size(h, w, factor)
    tiles = (images.reshape(n, c, factor, th, factor, tw).permute(0, 2, 4, 1, 3, 5)
             .reshape(n * factor * factor, c, th, tw))
    up = F.interpolate(tiles, size=(h, w), mode="bilinear", align_corners=False)
    return up, labels.repeat_interleave(factor * factor)


def encode(images: torch.Tensor, factor: int) -> torch.Tensor:
    """(N * factor^2, C, H, W) images -> (N, C, H, W) stored images: each image is
    downsampled by area averaging and consecutive groups of factor^2 are tiled row-major, so
    ``decode(encode(x))`` returns x at the tile resolution, in order (the real-image start of
    a multi-formation set). factor 1 is the identity."""
    if factor == 1:
        return images
    m, c, h, w = images.shape
    th, tw = tile_size(h, w, factor)
    if m % (factor * factor):
        raise ValueError(f"{m} images cannot fill stored images of {factor}x{factor} tiles")
    small = F.interpolate(images, size=(th, tw), mode="area")
    n = m // (factor * factor)
    return (small.reshape(n, factor, factor, c, th, tw).permute(0, 3, 1, 4, 2, 5)
            .reshape(n, c, h, w))
