"""DP-SGD: the protocol's training with differential privacy, the private baseline a distilled
set is compared with at matched accuracy (Carlini et al., "No Free Lunch in 'Privacy for
Free': How does Dataset Condensation Help Privacy", 2022).

DP-SGD (Abadi et al., "Deep Learning with Differential Privacy", CCS 2016, Algorithm 1):
each example's gradient is clipped to norm C, Gaussian noise of std sigma * C is added to
their sum, batches are drawn by Poisson sampling (rate q = batch / n), and an accountant
turns (sigma, q, steps) into (epsilon, delta). Opacus (Yousefpour et al., 2021) computes the
per-example gradients, calibrates sigma to a target epsilon over the planned epochs and does
the accounting (its PRV accountant, Gopi et al., NeurIPS 2021); this module runs it inside
the field's protocol (SGD with momentum and weight decay, lr x0.1 at half the epochs, DSA on
every batch) and records the accountant's epsilon.
"""
from __future__ import annotations

import contextlib
import math
import time
import warnings
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .compute import Compute, given
from .config import TrainConfig
from .data.base import DatasetInfo
from .training import _batch, protocol_lr, run_seed, train_network


def train_protocol(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                   info: DatasetInfo, cfg: TrainConfig, *, generator: torch.Generator,
                   compute: Optional[Compute] = None, device: Optional[torch.device] = None,
                   world=None, **kw) -> dict:
    """The protocol's training of ``net``: DP-SGD where ``cfg.dp_epsilon`` is set
    (``train_private``), else ``training.train_network``. DP-SGD keeps no mid-run checkpoint
    (its accountant's state would have to travel with it): ``checkpoint`` is ignored there."""
    if cfg.dp_epsilon is None:
        return train_network(net, images, labels, info, cfg, generator=generator, compute=compute,
                             device=device, world=world, **kw)
    if world is not None and world.active:
        raise ValueError("DP-SGD runs in one process: drop torchrun (or --dp-epsilon)")
    kw.pop("checkpoint", None)
    kw.pop("checkpoint_every", None)
    return train_private(net, images, labels, info, cfg, generator=generator,
                         compute=given(compute, device, cfg), **kw)


def _opacus():
    try:
        from opacus import PrivacyEngine
        from opacus.validators import ModuleValidator
    except ImportError:
        raise ValueError("DP-SGD (--dp-epsilon) needs Opacus: pip install 'synthset[privacy]' "
                         "(opacus==1.6.0)") from None
    return PrivacyEngine, ModuleValidator


def _plain_layers(net: torch.nn.Module) -> None:
    """Opacus keys its per-example gradient rules by exact layer type: our layers that compute
    nn.Conv2d's and nn.GroupNorm's maths (an im2col kernel, fp32 statistics under bf16)
    become those classes, and activations stop working in place (the hooks keep them)."""
    from .models.base import FewChannelConv2d, GroupNorm32
    for m in net.modules():
        if isinstance(m, FewChannelConv2d):
            m.__class__ = torch.nn.Conv2d
        elif isinstance(m, GroupNorm32):
            m.__class__ = torch.nn.GroupNorm
        if hasattr(m, "inplace"):
            m.inplace = False


def train_private(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                  info: DatasetInfo, cfg: TrainConfig, *, generator: torch.Generator,
                  compute: Compute, desc: str = "DP-SGD", progress: bool = True,
                  on_epoch: Optional[Callable[[int, float], None]] = None) -> dict:
    """Train ``net`` in place with DP-SGD to ``cfg.dp_epsilon`` at ``cfg.dp_delta`` (per-example
    clipping to ``cfg.dp_max_grad_norm``), uncompiled (per-example gradients come from module
    hooks). The forward and backward passes run at the policy's train precision (bf16 where
    it was chosen); the per-example gradients are cast to fp32 before they are clipped, so the
    sensitivity bound C holds to fp32 rounding as in any DP-SGD. Returns ``train_network``'s
    record plus ``dp``: the accountant's epsilon, delta, noise multiplier, clipping norm and sample rate."""
    PrivacyEngine, ModuleValidator = _opacus()
    problems = ModuleValidator.validate(net, strict=False)
    if problems:
        raise ValueError(f"DP-SGD cannot train this network: {problems[0]}. Per-example "
                         f"gradients need layers that do not mix examples (no batch norm): "
                         f"use e.g. ConvNet (instance norm)")
    _plain_layers(net)
    device = compute.device
    net = net.to(device).train()
    images, labels = images.to(device), labels.to(device)
    n = images.shape[0]
    seed = run_seed(int(torch.randint(2 ** 62, (1,), generator=generator)), "dp")
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.arange(n)),
                                         batch_size=min(cfg.batch_size, n),
                                         generator=torch.Generator().manual_seed(seed))
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)
    with _quiet():
        record = _train(PrivacyEngine(accountant="prv"), net, opt, loader, images, labels, info,
                        cfg, generator=generator, seed=seed, desc=desc, progress=progress,
                        on_epoch=on_epoch, autocast=compute.autocast("train"))
    record["dp"]["precision"] = compute.precision_of("train")
    return record


# Opacus's notes that do not apply here: the seeded noise generator (reproducible audits,
# not a production release, which would retrain with secure_mode), the first layer's hook
# without an input gradient, the RDP order search inside the noise calibration
QUIET = ("Secure RNG turned off", "Full backward hook is firing", "Optimal order is the largest alpha")


def dp_bench(model: str, shape, batch: int, cfg: TrainConfig, compute: Compute):
    """One DP-SGD step's heavy part under ``compute`` (forward, backward with Opacus's
    per-example gradient hooks, their fp32 norms), to time the precision candidates."""
    from .models import build_model
    _opacus()
    from opacus import GradSampleModule
    g = torch.Generator().manual_seed(0)
    net = build_model(model, shape[0], 10, shape[1:], generator=g)
    _plain_layers(net)
    net = GradSampleModule(compute.place(net).train())
    x = compute.layout(torch.randn(batch, *shape, generator=g))
    y = torch.randint(0, 10, (batch,), generator=g).to(compute.device)
    autocast = compute.autocast("train")

    def step():
        with _quiet():
            _backward(net, x, y, autocast)
        torch.stack([p.grad_sample.flatten(1).norm(dim=1) for p in net.parameters()]).sum()
        net.zero_grad(set_to_none=True)
    return step


@contextlib.contextmanager
def _quiet():
    with warnings.catch_warnings():
        for message in QUIET:
            warnings.filterwarnings("ignore", message=message)
        yield


def _backward(model, x, y, autocast) -> torch.Tensor:
    """Forward at the policy's precision, cross-entropy in fp32, backward through Opacus's
    hooks, the per-example gradients made fp32 for clipping; returns the loss."""
    with autocast():
        logits = model(x)
    loss = F.cross_entropy(logits.float(), y)
    loss.backward()
    _fp32_per_example_grads(model)
    return loss


def _fp32_per_example_grads(model: torch.nn.Module) -> None:
    """Opacus clips ``p.grad_sample``: under bf16 autocast the hooks make it bf16, whose
    rounding (2^-8) could let a clipped gradient's norm pass C; clip in fp32 instead."""
    for p in model.parameters():
        g = getattr(p, "grad_sample", None)
        if g is not None and g.dtype != torch.float32:
            p.grad_sample = g.float()


def _train(engine, net, opt, loader, images, labels, info, cfg, *, generator, seed, desc,
           progress, on_epoch, autocast) -> dict:
    device = images.device
    model, opt, loader = engine.make_private_with_epsilon(
        module=net, optimizer=opt, data_loader=loader, target_epsilon=cfg.dp_epsilon,
        target_delta=cfg.dp_delta, epochs=cfg.epochs, max_grad_norm=cfg.dp_max_grad_norm,
        noise_generator=torch.Generator(device=device).manual_seed(seed + 1))
    fp32 = Compute(device=device, precision={"train": "fp32"})
    steps, last_loss, t0 = 0, math.nan, time.perf_counter()
    bar = tqdm(range(cfg.epochs), desc=desc, disable=not progress, leave=False, mininterval=1.0)
    for ep in bar:
        protocol_lr(opt, cfg, ep)
        losses = []
        for (idx,) in loader:
            if len(idx) == 0:  # a Poisson draw can be empty: nothing to release
                continue
            idx = idx.to(device)
            opt.zero_grad(set_to_none=True)
            loss = _backward(model, _batch(images[idx], info, cfg, generator, fp32), labels[idx],
                             autocast)
            opt.step()
            losses.append(loss.detach())
            steps += 1
        last_loss = float(torch.stack(losses).mean()) if losses else math.nan
        bar.set_postfix(loss=f"{last_loss:.3f}")
        if on_epoch is not None:
            on_epoch(ep, last_loss)
    model.remove_hooks()  # the trained ``net`` goes on to be tested as a plain module
    return {"train_seconds": time.perf_counter() - t0, "steps": steps, "final_train_loss": last_loss,
            "dp": {"epsilon": float(engine.get_epsilon(cfg.dp_delta)), "delta": cfg.dp_delta,
                   "target_epsilon": cfg.dp_epsilon, "noise_multiplier": float(opt.noise_multiplier),
                   "max_grad_norm": cfg.dp_max_grad_norm, "sample_rate": 1 / len(loader),
                   "accountant": "prv"}}
