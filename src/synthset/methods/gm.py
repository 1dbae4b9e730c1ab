"""Gradient matching: Dataset Condensation (DC; Zhao, Mopuri & Bilen, "Dataset Condensation
with Gradient Matching", ICLR 2021) and its siamese-augmented version (DSA; Zhao & Bilen,
"Dataset Condensation with Differentiable Siamese Augmentation", ICML 2021).

Each engine iteration takes a freshly initialised network and runs ``outer_loop`` rounds of:
match, class by class, the gradient of the network's loss on a real batch with the gradient
on the class's synthetic images (one image step on the summed distance), then train the
network ``inner_loop`` epochs on the current synthetic set. DSA applies one sampled
augmentation to both batches of a class (and augments the network's training)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import torch
import torch.nn.functional as F

from .. import augment
from ..config import Options, check, opt
from ..flops import count_flops
from ..models import build_model
from .base import LearnedMethod, register_method

# (outer_loop, inner_loop) by images per class: the official code's get_loops.
LOOPS = {1: (1, 1), 10: (10, 50), 20: (20, 25), 30: (30, 20), 40: (40, 15), 50: (50, 10)}


def loops_for(ipc: int) -> tuple[int, int]:
    """The official (outer_loop, inner_loop) for ``ipc``; other IPCs take the nearest
    listed one (ties to the smaller)."""
    return LOOPS[min(LOOPS, key=lambda k: (abs(k - ipc), k))]


def layer_distance(g_real: torch.Tensor, g_syn: torch.Tensor) -> torch.Tensor:
    """DC's layer-wise distance (Zhao et al., 2021, Eq. 10): the weight gradient reshaped to
    (output channels, -1), d = sum_i (1 - <a_i, b_i> / (|a_i| |b_i| + 1e-6)) over output
    channels i. One-dimensional gradients (biases, norm parameters) count as 0, as in the
    reference code."""
    if g_real.dim() == 1:
        return torch.zeros((), device=g_real.device)
    a = g_real.reshape(g_real.shape[0], -1)
    b = g_syn.reshape(g_syn.shape[0], -1)
    cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1) + 1e-6)
    return (1.0 - cos).sum()


def gradient_distance(real: list[torch.Tensor], syn: list[torch.Tensor]) -> torch.Tensor:
    """DC's matching distance D (Eq. 9): the sum of ``layer_distance`` over layers."""
    return sum((layer_distance(r, s) for r, s in zip(real, syn)),
               torch.zeros((), device=real[0].device))


@dataclass(frozen=True, kw_only=True)
class GMOptions(Options):
    """Gradient matching's loops (None: the official values for the IPC, ``LOOPS``)."""

    outer_loop: Optional[int] = opt(None, "match-and-train rounds per network (default: by IPC, "
                                          "1 / 10 / 50 at IPC 1 / 10 / 50)")
    inner_loop: Optional[int] = opt(None, "epochs of network training on the synthetic set "
                                          "between rounds (default: by IPC, 1 / 50 / 10)")
    lr_net: float = opt(0.01, "SGD lr of that network training")
    batch_train: int = opt(256, "batch of that network training")

    def __post_init__(self) -> None:
        check(self.outer_loop is None or self.outer_loop >= 1, "outer_loop must be >= 1")
        check(self.inner_loop is None or self.inner_loop >= 0, "inner_loop must be >= 0")
        check(self.lr_net > 0 and self.batch_train >= 1, "lr_net must be > 0, batch_train >= 1")


def _loops(ctx) -> tuple[int, int]:
    outer, inner = loops_for(ctx.config.ipc)
    o = ctx.options
    return (o.outer_loop or outer, inner if o.inner_loop is None else o.inner_loop)


class GradientMatching(LearnedMethod):
    Options: ClassVar[type] = GMOptions
    # auto keeps fp32: per-layer gradient distances were not validated in bf16
    bf16_auto = False
    default_iterations = 1000
    default_batch_real = 256
    default_lr_img = 0.1
    smoke = {**LearnedMethod.smoke, "outer_loop": 2, "inner_loop": 1}  # one outer step is two nets
    siamese: ClassVar[bool] = False

    def class_gradients(self, net, params, x: torch.Tensor, classes: int, *,
                        create_graph: bool) -> list[list[torch.Tensor]]:
        """Per class, the gradient of the mean cross-entropy of its (class-major) images
        w.r.t. ``params``: one forward and backward per class, as the reference code (one
        batched forward with per-class backwards costs a full backward per class, and
        ``torch.func.vmap`` over classes measured 2.8x slower on CPU)."""
        n = x.shape[0] // classes
        grads = []
        for c in range(classes):
            target = torch.full((n,), c, dtype=torch.long, device=x.device)
            loss = F.cross_entropy(net(x[c * n:(c + 1) * n]).float(), target)
            grads.append(list(torch.autograd.grad(loss, params, create_graph=create_graph)))
        return grads

    def match_loss(self, ctx, state, net, params, generator) -> torch.Tensor:
        """One round's loss: sum over classes of the gradient distance, real vs synthetic."""
        classes, ec = ctx.classes, ctx.engine
        real, pos = ctx.real_shard(generator)  # under torchrun: this rank's positions
        syn = state.decoded()[0]
        if self.siamese:
            p = augment.sample(ec.dsa, classes, max(ctx.n_real, ctx.n_syn), tuple(ctx.info.size),
                               generator=generator, device=ctx.device)
            real = augment.apply(real, p.at(pos), classes, ec.dsa)
            syn = augment.apply(syn, p, classes, ec.dsa)
        with ctx.autocast():
            g_real = self.class_gradients(net, params, ctx.memory_format(real), classes,
                                          create_graph=False)
            g_syn = self.class_gradients(net, params, ctx.memory_format(syn), classes,
                                         create_graph=True)
        # the gradient of the whole batch's mean loss: the ranks' shard gradients, weighted
        flat = ctx.reduce_means([g.detach() for r in g_real for g in r], pos)
        k = len(params)
        g_real = [flat[c * k:(c + 1) * k] for c in range(classes)]
        return sum(gradient_distance(r, s) for r, s in zip(g_real, g_syn))

    def train_net(self, ctx, state, net, opt_net, epochs: int, generator) -> None:
        """``epochs`` of SGD on the current synthetic set (DSA-augmented for DSA)."""
        with torch.no_grad():
            images, labels = state.decoded()
        images, labels = images.detach(), labels.to(ctx.device)
        n, bs, ec = images.shape[0], min(ctx.options.batch_train, images.shape[0]), ctx.engine
        for _ in range(epochs):
            order = torch.randperm(n, generator=generator).to(ctx.device)
            for b in range(0, n, bs):
                x, y = images[order[b:b + bs]], labels[order[b:b + bs]]
                if self.siamese:
                    p = augment.sample(ec.dsa, 1, x.shape[0], tuple(x.shape[2:]),
                                       generator=generator, device=ctx.device)
                    x = augment.apply(x, p, 1, ec.dsa)
                with ctx.autocast():
                    loss = F.cross_entropy(net(ctx.memory_format(x)).float(), y)
                opt_net.zero_grad(set_to_none=True)
                loss.backward()
                opt_net.step()

    def step(self, ctx, state, generator: torch.Generator) -> float:
        outer, inner = _loops(ctx)
        net = ctx.build_net(generator, frozen=False)
        params = [p for p in net.parameters() if p.dim() > 1]  # 1-D gradients count as 0
        opt_net = torch.optim.SGD(net.parameters(), lr=ctx.options.lr_net)
        total = 0.0
        for round_ in range(outer):
            total += state.step(self.match_loss(ctx, state, net, params, generator))
            if round_ < outer - 1:
                self.train_net(ctx, state, net, opt_net, inner, generator)
        return total / outer

    def iteration_flops(self, ctx) -> int:
        """FLOPs of one iteration: outer x (per-class real forward + backward, synthetic
        forward + double backward) + (outer - 1) x inner epochs of training on the set,
        counted by FlopCounterMode on meta tensors (augmentation counts as zero)."""
        outer, inner = _loops(ctx)
        info, classes = ctx.info, ctx.classes
        net = build_model(ctx.engine.model, info.channels, classes, info.size).to("meta")
        params = [p for p in net.parameters() if p.dim() > 1]
        real = torch.empty(classes * ctx.n_real, info.channels, *info.size, device="meta")
        syn = torch.empty(classes * ctx.n_syn, info.channels, *info.size, device="meta",
                          requires_grad=True)

        def round_():
            g_real = self.class_gradients(net, params, real, classes, create_graph=False)
            g_syn = self.class_gradients(net, params, syn, classes, create_graph=True)
            sum(gradient_distance(r, s) for r, s in zip(g_real, g_syn)).backward()

        def epoch():
            y = torch.zeros(syn.shape[0], dtype=torch.long, device="meta")
            F.cross_entropy(net(syn.detach()), y).backward()

        return outer * count_flops(round_) + (outer - 1) * inner * count_flops(epoch)


@register_method("dc")
class DC(GradientMatching):
    siamese = False
    order, color = 5, "#2ca02c"
    citation = "Zhao, Mopuri & Bilen, Dataset Condensation with Gradient Matching, ICLR 2021"
    summary = "per-class gradients of a network trained on the set as it learns"


@register_method("dsa")
class DSA(GradientMatching):
    siamese = True
    order, color = 6, "#ff7f0e"
    citation = ("Zhao & Bilen, Dataset Condensation with Differentiable Siamese Augmentation, "
                "ICML 2021")
    summary = "gradient matching under one shared augmentation of real and synthetic batches"
