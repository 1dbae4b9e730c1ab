"""Attention Matching (DataDAM; Sajedi, Khaki, Amjadian, Liu, Lawryshyn & Plataniotis,
"DataDAM: Efficient Dataset Distillation with Attention Matching", ICCV 2023): in a
randomly initialised network, match each class's mean spatial attention map of real and
synthetic images at the intermediate blocks, plus their mean final embedding (an MMD)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from ..config import check, opt
from .base import register_method
from .dm import dm_loss
from .matching import EmbeddingMatching, MatchingOptions


@dataclass(frozen=True, kw_only=True)
class DataDAMOptions(MatchingOptions):
    """DataDAM's loss (Sajedi et al., ICCV 2023) on top of the matching loop's options."""

    p: float = opt(4.0, "attention exponent, sum_c |f_c|^p (paper table: 4; public code: 1)")
    at: str = opt("relu", "read attention at each block's ReLU output before pooling (as the "
                          "public code) or at the block output", flag="attention-at",
                  choices=("relu", "block"))
    lam: float = opt(0.01, "weight of the final-embedding MMD term (with the code's factor 100 "
                           "on both terms, 0.01 makes it exactly DM's loss)")
    layers: Optional[tuple[int, ...]] = opt(None, "comma-separated block indices whose attention "
                                                  "is matched (default: all but the last)")
    attention: bool = opt(True, "the attention term (off: DM)")
    embedding: bool = opt(True, "the embedding term")

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.p > 0, f"p must be > 0, got {self.p}")
        check(self.lam >= 0, f"lam must be >= 0, got {self.lam}")
        check(self.attention or self.embedding, "switch on at least one of attention, embedding")
        check(self.at in ("relu", "block"), f"at must be relu|block, got {self.at!r}")
        check(self.embedding or not self.ce_weight or self.ce_net == "expert",
              "--ce-weight through the matched network reads its embedding: keep the embedding "
              "term on, or use --ce-net expert")
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(int(i) for i in self.layers))


def spatial_attention(f: torch.Tensor, p: float) -> torch.Tensor:
    """Spatial attention map of a feature map (Sajedi et al., 2023, Eq. 2, after Zagoruyko &
    Komodakis's attention transfer): A(f) = sum_c |f_c|^p over the channels of f (n, c, h, w),
    flattened to (n, h*w) and L2-normalised per image."""
    return F.normalize(f.abs().pow(p).sum(1).flatten(1), dim=1)


def matched_layers(depth: int, layers: tuple[int, ...] | None) -> list[int]:
    """Block indices whose attention is matched: every block but the last by default (the
    last block's output feeds the embedding term)."""
    if layers is None:
        return list(range(depth - 1))
    out = []
    for i in layers:
        if not -depth <= i < depth:
            raise ValueError(f"datadam layer {i} does not exist: the network has {depth} blocks "
                             f"(indices 0..{depth - 1})")
        out.append(i % depth)
    return out


def datadam_loss(real_att: list[torch.Tensor], syn_att: list[torch.Tensor],
                 real_emb: torch.Tensor | None, syn_emb: torch.Tensor | None,
                 lam: float) -> torch.Tensor:
    """DataDAM's objective (Sajedi et al., 2023, Eqs. 3-5: L = L_SAM + lambda L_MMD), with the
    factor 100 on both terms of the public code, summed over classes:
    L = 100 sum_c sum_k ||mean A_k(real_c) - mean A_k(syn_c)||^2
        + 100 lam sum_c ||mean psi(real_c) - mean psi(syn_c)||^2.
    Inputs are per-class means, (classes, d)."""
    loss = torch.zeros((), device=(real_emb if real_emb is not None else real_att[0]).device)
    for r, s in zip(real_att, syn_att):
        loss = loss + 100.0 * (r.float() - s.float()).pow(2).sum()
    if real_emb is not None:
        loss = loss + 100.0 * lam * dm_loss(real_emb, syn_emb)
    return loss


@register_method("datadam")
class DataDAM(EmbeddingMatching):
    Options = DataDAMOptions
    default_iterations = 8000  # the paper's table (its code: 20,000)
    default_batch_real = 64
    order, color = 4, "#d62728"
    citation = ("Sajedi et al., DataDAM: Efficient Dataset Distillation with Attention "
                "Matching, ICCV 2023")
    summary = "class-mean spatial attention maps of the blocks plus the final embedding"

    def features(self, net, x, options):
        """(attention map of each matched block..., final embedding), as switched on."""
        cfg = options
        if not cfg.attention:
            return (net.embed(x),)
        if cfg.at == "relu":
            blocks, last = net.activations(x)
        else:
            blocks = net.blocks(x)
            last = blocks[-1]
        atts = []
        for i in matched_layers(len(blocks), cfg.layers):
            if blocks[i].dim() != 4:
                raise ValueError(f"datadam matches spatial attention maps, but block {i} of "
                                 f"{type(net).__name__} outputs shape {tuple(blocks[i].shape)}; "
                                 f"use a convolutional model (e.g. ConvNet) or --no-attention")
            atts.append(spatial_attention(blocks[i], cfg.p))
        return tuple(atts) + ((net.head(last),) if cfg.embedding else ())

    def match(self, real_means, syn_means, options):
        n_att = len(real_means) - (1 if options.embedding else 0)  # embedding, if any, is last
        return datadam_loss(list(real_means[:n_att]), list(syn_means[:n_att]),
                            real_means[-1] if options.embedding else None,
                            syn_means[-1] if options.embedding else None, options.lam)
