"""Training a network with the field's protocol (DC/DSA/DM ``evaluate_synset``): SGD,
lr x0.1 at half the epochs, DSA on every batch, cross-entropy. Used by the evaluation, the
full-data reference and the coresets' feature network."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import augment
from .atomic import replacing
from .cutmix import cutmix, cutmix_loss
from .config import TrainConfig
from .data.base import DatasetInfo, normalize
from .compute import Compute, given
from .device import reuse_freed_memory, synchronize


def run_seed(seed: int, *keys: int | str) -> int:
    """A reproducible 63-bit seed for (seed, model, run, ...) without Python's salted hash."""
    h = hashlib.sha256(json.dumps([seed, *keys]).encode()).digest()
    return int.from_bytes(h[:8], "little") >> 1


def _data_parallel(net, n: int, bs: int, generator, world, device):
    """DDP over a DistributedSampler shard of each epoch, each rank a 1/size share of the
    batch and its own augmentation stream: (model, sampler, generator, batch, images/rank)."""
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DistributedSampler
    model = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    seed = int(torch.randint(2 ** 31, (1,), generator=generator))  # the same on every rank
    sampler = DistributedSampler(range(n), num_replicas=world.size, rank=world.rank,
                                 shuffle=True, seed=seed)
    generator = torch.Generator().manual_seed(run_seed(seed, "rank", world.rank))
    # len(sampler): this rank's images per epoch (the sampler pads to equal shares)
    return model, sampler, generator, max(1, math.ceil(bs / world.size)), len(sampler)


def _batch(x: torch.Tensor, info: DatasetInfo, cfg: TrainConfig, generator,
           compute: Compute) -> torch.Tensor:
    """A training batch as the network sees it: normalised, turned (``dihedral``), DSA
    augmented, in the policy's memory format."""
    if x.dtype == torch.uint8:
        x = normalize(x, info.mean, info.std)
    if cfg.dihedral:
        x = augment.dihedral(x, generator)
    if cfg.augment:
        p = augment.sample(cfg.dsa, 1, x.shape[0], tuple(x.shape[2:]), generator=generator,
                           device=compute.device)
        x = augment.apply(x, p, 1, cfg.dsa)
    return compute.layout(x)


def protocol_lr(opt: torch.optim.Optimizer, cfg: TrainConfig, epoch: int) -> None:
    """The protocol's schedule (DC/DSA/DM ``evaluate_synset``): lr x0.1 at half the epochs."""
    if epoch == cfg.epochs // 2 and epoch > 0:
        for group in opt.param_groups:
            group["lr"] = cfg.lr * 0.1


def _order(sampler, epoch: int, n: int, steps: int, generator, device) -> Optional[torch.Tensor]:
    """An epoch's image order: this rank's shard under DDP, else a permutation (None where
    one batch holds every image)."""
    if sampler is not None:
        sampler.set_epoch(epoch)
        return torch.tensor(list(sampler), device=device)
    return torch.randperm(n, generator=generator).to(device) if steps > 1 else None


def _loss(fwd, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, generator, autocast) -> torch.Tensor:
    """A batch's loss: cross-entropy, or CutMix's on a ``cfg.cutmix`` share of the batches
    (no draw at all when it is off, so runs without it stay as they were)."""
    mixed = cfg.cutmix > 0 and float(torch.rand((), generator=generator,
                                                device=generator.device)) < cfg.cutmix
    if mixed:
        x, perm, lam = cutmix(x, generator)
    with autocast():
        out = fwd(x)
        return cutmix_loss(out, y, perm, lam) if mixed else F.cross_entropy(out, y)


def train_network(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                  info: DatasetInfo, cfg: TrainConfig, *, generator: torch.Generator,
                  compute: Optional[Compute] = None, device: Optional[torch.device] = None,
                  desc: str = "train", progress: bool = True,
                  on_epoch: Optional[Callable[[int, float], None]] = None,
                  world=None, checkpoint: Optional[Path] = None,
                  checkpoint_every: float = 300.0) -> dict:
    """Train ``net`` in place. ``images`` are normalised floats or uint8 (normalised per
    batch, so the full training set stays compact). ``compute`` says where and how (its
    ``train`` pass's precision, compilation, memory format; ``device`` alone: ``cfg``'s, auto
    as fp32); ``cfg`` the protocol. Returns timing and the last loss.

    ``world`` (a ``synthset.distributed.World`` of several ranks): data-parallel training,
    ``DistributedDataParallel`` over a ``DistributedSampler`` shard of each epoch, each rank
    a 1/size share of the protocol's batch (the global batch stays ``batch_size``), its own
    augmentation stream; the weights stay the same on every rank.

    ``checkpoint`` (one process only): the training's state (weights, momentum, the
    generator's state, the epoch) is saved there at the end of an epoch once
    ``checkpoint_every`` seconds have passed since the last save, and a training that finds
    it continues after its epoch, exactly as if it had not stopped; an interruption loses at
    most that many seconds of a run. The caller removes it when the run's result is kept."""
    cfg, compute, net, images, labels = _placed(net, images, labels, cfg, compute, device)
    device = compute.device
    n = images.shape[0]
    bs = min(cfg.batch_size, n)
    model, sampler = net, None
    if world is not None and world.active:
        model, sampler, generator, bs, n = _data_parallel(net, n, bs, generator, world, device)
    fwd = compute.compiled(model)
    autocast = compute.autocast("train")
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(n / bs)
    start, steps, before, last_loss = _resume(checkpoint, net, opt, generator, world)
    synchronize(device)
    t0 = saved = time.perf_counter()
    bar = tqdm(range(start, cfg.epochs), desc=desc, disable=not progress, leave=False,
               mininterval=1.0, initial=start, total=cfg.epochs)
    for ep in bar:
        protocol_lr(opt, cfg, ep)
        order = _order(sampler, ep, n, steps_per_epoch, generator, device)
        loss_sum = _epoch(fwd, opt, images, labels, order, bs, steps_per_epoch, info, cfg,
                          generator, compute, autocast)
        steps += steps_per_epoch
        due = checkpoint is not None and ep < cfg.epochs - 1 \
            and time.perf_counter() - saved >= checkpoint_every
        if due or on_epoch is not None or (progress and ep % 50 == 0) or ep == cfg.epochs - 1:
            last_loss = float(loss_sum.item()) / steps_per_epoch  # .item() waits for the epoch
            bar.set_postfix(loss=f"{last_loss:.3f}")
        if due:
            _save_progress(checkpoint, net, opt, generator, epoch=ep, steps=steps,
                           seconds=before + time.perf_counter() - t0, last_loss=last_loss)
            saved = time.perf_counter()
        if on_epoch is not None:
            on_epoch(ep, last_loss)
    synchronize(device)
    return {"train_seconds": before + time.perf_counter() - t0, "steps": steps,
            "final_train_loss": last_loss}


def _placed(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
            cfg: TrainConfig, compute: Optional[Compute], device: Optional[torch.device]):
    """The training's protocol, compute policy, network and data, on its device: CutMix
    replaces DSA's cutout, as in IDC's evaluation; ``compute`` defaults to ``cfg``'s on
    ``device``."""
    reuse_freed_memory()
    if cfg.cutmix:
        cfg = dataclasses.replace(cfg, dsa=cfg.dsa.without("cutout"))
    compute = given(compute, device, cfg)
    net = compute.place(net).train()
    return cfg, compute, net, images.to(compute.device), labels.to(compute.device)


def _resume(checkpoint: Optional[Path], net: torch.nn.Module, opt: torch.optim.Optimizer,
            generator: torch.Generator, world) -> tuple[int, int, float, float]:
    """(first epoch, steps done, seconds spent, last loss): from ``checkpoint`` if there is
    one (``_restore``), else a training's start. Data-parallel ranks keep none."""
    if checkpoint is not None and world is not None and world.active:
        raise ValueError("checkpoint: data-parallel training keeps no checkpoint (each rank "
                         "has its own generator): pass checkpoint=None under torchrun")
    if checkpoint is not None and Path(checkpoint).exists():
        return _restore(checkpoint, net, opt, generator)
    return 0, 0, 0.0, float("nan")


def _epoch(fwd, opt, images, labels, order, bs: int, steps: int, info: DatasetInfo,
           cfg: TrainConfig, generator, compute: Compute, autocast) -> torch.Tensor:
    """One epoch of SGD steps over ``order`` (None: the whole set each step); returns the
    sum of the steps' losses, left on the device."""
    loss_sum = torch.zeros((), device=compute.device)
    for b in range(steps):
        idx = order[b * bs:(b + 1) * bs] if order is not None else None
        x = _batch(images if idx is None else images[idx], info, cfg, generator, compute)
        y = labels if idx is None else labels[idx]
        loss = _loss(fwd, x, y, cfg, generator, autocast)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.detach()
    return loss_sum


def _save_progress(path: Path, net: torch.nn.Module, opt: torch.optim.Optimizer,
                   generator: torch.Generator, *, epoch: int, steps: int, seconds: float,
                   last_loss: float) -> None:
    """Write a training's state after ``epoch`` atomically (a save cut short leaves the
    previous one)."""
    state = {"net": net.state_dict(), "opt": opt.state_dict(),
             "generator": generator.get_state(), "generator_device": str(generator.device),
             "epoch": epoch, "steps": steps, "seconds": seconds, "last_loss": last_loss}
    with replacing(path) as tmp:
        torch.save(state, tmp)


def _restore(path: Path, net: torch.nn.Module, opt: torch.optim.Optimizer,
             generator: torch.Generator) -> tuple[int, int, float, float]:
    """Load ``_save_progress``'s state into ``net``, ``opt`` and ``generator``; returns
    (first epoch to train, steps done, seconds spent, last loss)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
    except Exception as e:  # a truncated or foreign file: say which, and how to go on
        raise ValueError(f"the training checkpoint {path} cannot be read: it is truncated or "
                         f"not this run's ({type(e).__name__}); delete it to train this run "
                         f"from its start") from e
    if state["generator_device"] != str(generator.device):
        raise ValueError(f"the training checkpoint {path} was written with a generator on "
                         f"{state['generator_device']}, this run's is on {generator.device}: "
                         f"resume on the same device, or delete it to start the run again")
    generator.set_state(state["generator"])
    return state["epoch"] + 1, state["steps"], state["seconds"], state["last_loss"]
