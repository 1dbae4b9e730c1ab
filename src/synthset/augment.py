"""Differentiable Siamese Augmentation (DSA; Zhao & Bilen, "Dataset Condensation with
Differentiable Siamese Augmentation", ICML 2021).

Parameters are *sampled* from an explicit ``torch.Generator`` into a ``DSAParams``
object and then *applied*; applying the same params to a real and a synthetic batch is
the siamese part. Params are drawn per (group, position): with batched classes, group =
class and position = index within the class, so a synthetic image and the real image at
the same position of its class get the same transform, as in the reference code. All
ops are differentiable w.r.t. the input. Geometric ops (crop, scale, rotate) are one
``affine_grid`` + ``grid_sample`` each.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

OPS = ("color", "crop", "cutout", "flip", "scale", "rotate")


@dataclass
class DSAParams:
    """One sampled augmentation: the op and per-image parameters shaped (groups, m, ...)."""

    op: str
    values: dict[str, torch.Tensor]

    def at(self, positions: Optional[torch.Tensor]) -> "DSAParams":
        """The parameters of the given positions of every group (a rank's shard of the
        real batch keeps the transforms those positions have in the whole batch); None: all."""
        if positions is None:
            return self
        return DSAParams(op=self.op, values={k: v[:, positions.to(v.device)]
                                             for k, v in self.values.items()})

    def take(self, groups: int, n: int) -> dict[str, torch.Tensor]:
        """Parameters for a batch of ``groups * n`` images (group-major)."""
        out = {}
        for k, v in self.values.items():
            if v.shape[0] != groups or v.shape[1] < n:
                raise ValueError(f"DSA params sampled for {tuple(v.shape[:2])} (groups, m) "
                                 f"cannot serve a batch of {groups} x {n}")
            out[k] = v[:, :n].reshape(groups * n, *v.shape[2:])
        return out


def sample(config, groups: int, m: int, size: tuple[int, int], *,
           generator: torch.Generator, device: torch.device | str = "cpu") -> DSAParams:
    """Draw one op (uniformly among the strategy's ops) and its per-image parameters."""
    ops = [o for o in config.strategy.split("_") if o]
    if not ops:
        return DSAParams(op="none", values={})
    g = generator
    op = ops[int(torch.randint(len(ops), (1,), generator=g).item())]
    shape = (groups, m)

    def u(*extra):  # uniform [0, 1) on the generator's device, then moved
        return torch.rand(*shape, *extra, generator=g, device=g.device).to(device)

    h, w = size
    if op == "color":
        vals = {"brightness": (u() - 0.5) * config.brightness,
                "saturation": u() * config.saturation,
                "contrast": u() + config.contrast}
    elif op == "crop":
        sx, sy = int(h * config.crop_pad + 0.5), int(w * config.crop_pad + 0.5)
        vals = {"tx": torch.randint(-sx, sx + 1, shape, generator=g, device=g.device).to(device),
                "ty": torch.randint(-sy, sy + 1, shape, generator=g, device=g.device).to(device)}
    elif op == "cutout":
        ch, cw = int(h * config.cutout + 0.5), int(w * config.cutout + 0.5)
        vals = {"cx": torch.randint(0, h + (1 - ch % 2), shape, generator=g, device=g.device).to(device),
                "cy": torch.randint(0, w + (1 - cw % 2), shape, generator=g, device=g.device).to(device)}
    elif op == "flip":
        vals = {"flip": u() < config.flip_prob}
    elif op == "scale":
        r = config.scale
        vals = {"sx": u() * (r - 1.0 / r) + 1.0 / r, "sy": u() * (r - 1.0 / r) + 1.0 / r}
    elif op == "rotate":
        vals = {"theta": (u() - 0.5) * 2 * config.rotate_deg / 180 * math.pi}
    else:  # pragma: no cover - guarded by DSAConfig
        raise ValueError(f"unknown DSA op {op!r}")
    return DSAParams(op=op, values=vals)


def apply(x: torch.Tensor, params: DSAParams, groups: int = 1, config=None) -> torch.Tensor:
    """Apply sampled params to ``x`` of shape (groups * n, C, H, W)."""
    if params.op == "none":
        return x
    n = x.shape[0] // groups
    v = params.take(groups, n)
    b = x.shape[0]
    if params.op == "color":
        x = x + v["brightness"].view(b, 1, 1, 1).to(x.dtype)
        mean_c = x.mean(dim=1, keepdim=True)
        x = (x - mean_c) * v["saturation"].view(b, 1, 1, 1).to(x.dtype) + mean_c
        mean_all = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - mean_all) * v["contrast"].view(b, 1, 1, 1).to(x.dtype) + mean_all
    if params.op == "flip":
        return torch.where(v["flip"].view(b, 1, 1, 1), x.flip(3), x)
    if params.op == "cutout":
        return x * cutout_mask(v["cx"], v["cy"], x.shape[2], x.shape[3],
                               config.cutout if config else 0.5).unsqueeze(1).to(x.dtype)
    if params.op == "crop":
        return translate(x, v["tx"], v["ty"])
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    if params.op == "scale":
        theta[:, 0, 0], theta[:, 1, 1] = v["sx"], v["sy"]
    else:  # rotate
        t = v["theta"]
        theta[:, 0, 0], theta[:, 0, 1] = torch.cos(t), torch.sin(-t)
        theta[:, 1, 0], theta[:, 1, 1] = torch.sin(t), torch.cos(t)
    grid = F.affine_grid(theta, list(x.shape), align_corners=True)
    return F.grid_sample(x, grid, align_corners=True)


def dihedral(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image of ``x`` (b, C, H, W), H == W, turned by a random multiple of 90 degrees
    and mirrored with probability 1/2: a uniform draw from the 8 symmetries of the square
    (the dihedral group D4). Histology has no up or left, so all 8 are the same tissue
    (Veeling et al., "Rotation Equivariant CNNs for Digital Pathology", MICCAI 2018, Sec. 2).
    Used per image on every training batch, on top of DSA's one op per batch."""
    b = x.shape[0]
    if x.shape[2] != x.shape[3]:
        raise ValueError(f"dihedral augmentation needs square images, got {tuple(x.shape[2:])}")
    turns = torch.randint(0, 4, (b,), generator=generator, device=generator.device).to(x.device)
    mirror = torch.randint(0, 2, (b,), generator=generator, device=generator.device).to(x.device)
    out = x.clone()
    m = mirror.bool()
    out[m] = out[m].flip(3)
    for k in (1, 2, 3):  # each image is transformed once, by the group that drew its turn
        sel = turns == k
        out[sel] = torch.rot90(out[sel], k, (2, 3))
    return out


def dihedral_views(x: torch.Tensor) -> list[torch.Tensor]:
    """The 8 symmetries of the square applied to the whole batch ``x`` (b, C, H, W), the
    identity first: the views that dihedral test-time augmentation averages over (the
    "TTA" of histology classifiers, e.g. Veeling et al., MICCAI 2018, Sec. 3)."""
    if x.shape[2] != x.shape[3]:
        raise ValueError(f"dihedral test-time augmentation needs square images, got {tuple(x.shape[2:])}")
    return [torch.rot90(x.flip(3) if m else x, k, (2, 3)) for m in (False, True) for k in range(4)]


def translate(x: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    """Integer shift with zero fill (DSA's ``rand_crop``): output (r, c) reads input
    (r + tx, c + ty); the shifts are symmetric random variables, so the sign is immaterial."""
    b, c, h, w = x.shape
    rows = torch.arange(h, device=x.device).view(1, h, 1) + tx.view(b, 1, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w) + ty.view(b, 1, 1)
    valid = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    idx = rows.clamp(0, h - 1) * w + cols.clamp(0, w - 1)  # (b, h, w)
    flat = x.reshape(b, c, h * w)
    out = flat.gather(2, idx.view(b, 1, h * w).expand(b, c, h * w)).view(b, c, h, w)
    return out * valid.unsqueeze(1).to(x.dtype)


def cutout_mask(cx: torch.Tensor, cy: torch.Tensor, h: int, w: int, ratio: float) -> torch.Tensor:
    """(b, h, w) mask that zeroes a square of side round(ratio * size) centred at (cx, cy)."""
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    rows = torch.arange(h, device=cx.device).view(1, h, 1)
    cols = torch.arange(w, device=cx.device).view(1, 1, w)
    r0 = (cx - ch // 2).view(-1, 1, 1)
    c0 = (cy - cw // 2).view(-1, 1, 1)
    inside = (rows >= r0) & (rows < r0 + ch) & (cols >= c0) & (cols < c0 + cw)
    return (~inside).float()


class DSA:
    """Convenience wrapper: ``DSA(config)(x, generator)`` samples and applies in one go;
    ``pair(real, syn, groups, generator)`` applies one siamese sample to both."""

    def __init__(self, config) -> None:
        self.config = config

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        p = sample(self.config, 1, x.shape[0], tuple(x.shape[2:]), generator=generator,
                   device=x.device)
        return apply(x, p, 1, self.config)

    def pair(self, real: torch.Tensor, syn: torch.Tensor, groups: int,
             generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        m = max(real.shape[0], syn.shape[0]) // groups
        p = sample(self.config, groups, m, tuple(real.shape[2:]), generator=generator,
                   device=real.device)
        return apply(real, p, groups, self.config), apply(syn, p, groups, self.config)
