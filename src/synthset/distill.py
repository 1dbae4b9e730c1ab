"""Entry point of a distillation run, and the outer loop of the matching methods.

``match_loop`` (DM, DataDAM): each iteration builds a freshly initialised, frozen network
from the run's generator (or, with ``net_pool``, draws a partially trained one from
``synthset.netpool.NetPool``), samples a real batch per class, applies one siamese DSA draw to
the real and synthetic batches, and takes one SGD step on the synthetic images (or
``inner_steps`` steps against the same real class means), optionally at a cosine lr
(``cosine_lr``) and keeping an average of the iterates as the result (``ema_update``). All
randomness comes from one generator, so a run checkpointed at iteration k and resumed
gives exactly the images of an uninterrupted run.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Callable, Optional

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from . import augment
from .config import DataConfig, DistillConfig, EvalConfig, MatchConfig, TrainConfig
from .data import load_dataset
from .data.base import ImageData, normalize
from .device import autocast, peak_memory_mib
from .flops import count_flops, train_step_flops
from .formation import decode, encode, tile_size
from .methods import METHODS
from .methods.base import MethodOutput, check_ipc
from .models import build_model
from .synthetic import SyntheticSet

CHECKPOINT = "checkpoint.safetensors"
CHECKPOINT_META = "checkpoint.json"
LOG = "log.jsonl"


def distill(data: DataConfig, config: DistillConfig, *, out_dir: Optional[str | Path] = None,
            device: torch.device = torch.device("cpu"), resume: bool = False,
            log: Callable[[str], None] = print) -> SyntheticSet:
    """Run ``config.method`` on the training split of ``data``; with ``out_dir`` save the set
    (safetensors + JSON), its config and its image grid there."""
    method = METHODS.get(config.method)  # fail fast on a bad name, before loading data
    train = load_dataset(data, "train")
    generator = torch.Generator().manual_seed(config.seed)
    t0 = time.perf_counter()
    out = method.run(train, config, device=device, generator=generator, log=log,
                     run_dir=Path(out_dir) if out_dir else None, resume=resume, data=data)
    seconds = time.perf_counter() - t0
    extra = dict(out.metadata)
    per_it = extra.pop("iteration_seconds", None)
    if per_it:
        extra["median_iteration_seconds"] = sorted(per_it)[len(per_it) // 2]
    sset = SyntheticSet(images=out.images.detach().cpu(), labels=out.labels.cpu(), info=train.info,
                        factor=int(extra.pop("factor", 1)),
                        metadata={"method": method.name, "ipc": config.ipc, "seed": config.seed,
                                  "data": data.to_dict(), "distill": config.to_dict(),
                                  "distill_seconds": seconds, "device": str(device),
                                  "n_train_real": len(train),
                                  "peak_memory_mib": round(peak_memory_mib(device), 1),
                                  **extra})
    if out_dir:
        out_dir = Path(out_dir)
        sset.save(out_dir)
        (out_dir / "config.json").write_text(json.dumps(
            {"data": data.to_dict(), "distill": config.to_dict()}, indent=2))
        sset.grid(out_dir / "grid.png")
    return sset


def _save_checkpoint(run_dir: Path, *, images, momentum, gen_state, iteration: int,
                     history: list, elapsed: list, config: DistillConfig, seconds: float,
                     extra: Optional[tuple[dict, dict]] = None) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    tensors = {"images": images.detach().cpu().contiguous(), "generator": gen_state.clone()}
    if momentum is not None:
        tensors["momentum"] = momentum.detach().cpu().contiguous()
    extra_tensors, extra_meta = extra or ({}, {})
    tensors.update(extra_tensors)
    meta = json.dumps({"iteration": iteration, "history": history, "elapsed": elapsed,
                       "config": config.to_dict(), "seconds": seconds, **extra_meta})
    # The state that resume reads lives in one file (meta in the safetensors header), so a
    # single atomic rename keeps tensors and iteration consistent; checkpoint.json is a
    # human-readable copy.
    save_file(tensors, str(run_dir / (CHECKPOINT + ".part")), metadata={"meta": meta})
    (run_dir / (CHECKPOINT + ".part")).replace(run_dir / CHECKPOINT)
    (run_dir / (CHECKPOINT_META + ".part")).write_text(meta)
    (run_dir / (CHECKPOINT_META + ".part")).replace(run_dir / CHECKPOINT_META)


def _comparable(cfg: dict) -> dict:
    d = json.loads(json.dumps(cfg))
    # Options added since a checkpoint was written take their defaults (older runs resume).
    d["match"] = {**MatchConfig().to_dict(), **d.get("match", {})}
    volatile = ["checkpoint_every", "eval_every", "eval_epochs", "eval_runs"]
    if d["match"].get("lr_schedule", "constant") == "constant":  # else the schedule depends on it
        volatile.append("iterations")
    for k in volatile:
        d["match"].pop(k, None)
    return d


def match_loop(method, train: ImageData, config: DistillConfig, *, device: torch.device,
               generator: torch.Generator, log: Callable[[str], None] = print,
               run_dir: Optional[Path] = None, resume: bool = False,
               data: Optional[DataConfig] = None, progress: bool = True,
               deadline: Optional[float] = None,
               on_step: Optional[Callable[[int, torch.Tensor, float], None]] = None) -> MethodOutput:
    """Optimise ``config.ipc`` synthetic images per class with ``method.loss``.
    ``deadline`` (a ``time.perf_counter()`` value) ends the run after the iteration that
    passes it (time-budgeted benchmarks); the images then count that many iterations.
    ``on_step(iterations_done, images, seconds)`` is called after each step (snapshots)."""
    mc = config.match
    iterations = mc.iterations if mc.iterations is not None else method.default_iterations
    by_class = check_ipc(train, config.ipc)
    classes, ipc = train.info.num_classes, config.ipc
    n_real = min(mc.batch_real or method.default_batch_real, min(len(ix) for ix in by_class))
    info = train.info
    factor = mc.factor
    n_syn = ipc * factor * factor  # training images per class after multi-formation decoding
    check_ipc(train, n_syn)
    tile_size(*info.size, factor)  # a factor that does not divide the image size fails here
    per_it = iteration_flops(method, config, info, n_real)  # before the loop: fail early
    pool = train.images.to(device)  # uint8 on the device; normalised per batch
    by_class_dev = [ix.to(device) for ix in by_class]

    def build_net(gen: Optional[torch.Generator]):
        net = build_model(mc.model, info.channels, classes, info.size, generator=gen).to(device)
        net.train()
        for p in net.parameters():
            p.requires_grad_(False)
        return net.to(memory_format=torch.channels_last) if mc.channels_last else net

    nets = None
    if mc.net_pool:
        from .netpool import NetPool
        nets = NetPool(size=mc.net_pool, refresh=mc.net_pool_refresh, steps=mc.net_train_steps,
                       batch=mc.net_train_batch, lr=mc.net_train_lr, build=build_net,
                       images=pool, labels=train.labels, mean=info.mean, std=info.std,
                       compile=mc.compile)
    autocast_ctx = autocast(device, mc.precision)
    embed_real = syn_loss = None
    if mc.compile:
        from .methods.matching import CompiledEmbed, CompiledSynLoss
        template = build_model(mc.model, info.channels, classes, info.size).to(device)
        embed_real = CompiledEmbed(template, device, chunk=mc.embed_chunk or 640,
                                   features=lambda n, x: method.features(n, x, config))
        syn_loss = CompiledSynLoss(method, template, config, classes)

    if mc.init == "real":
        idx = torch.cat([ix[torch.randperm(len(ix), generator=generator)[:n_syn]] for ix in by_class])
        images = encode(train.normalized(idx), factor).to(device)
    elif mc.init == "herding":
        # Start from the registered herding coreset in config.coreset's feature space
        # (deterministic, consumes nothing from the generator).
        coreset = METHODS.get("herding").run(train, dataclasses.replace(config, ipc=n_syn),
                                             device=device, generator=generator, log=log)
        images = encode(coreset.images, factor).to(device)
    else:
        images = torch.randn(classes * ipc, info.channels, *info.size, generator=generator).to(device)
    images.requires_grad_(True)
    avg = images.detach().clone() if mc.ema else None  # the saved set with --ema
    labels = torch.arange(classes).repeat_interleave(ipc)
    opt = torch.optim.SGD([images], lr=mc.lr_img, momentum=mc.momentum)
    start, history, prior_seconds = 0, [], 0.0
    elapsed: list[float] = []  # run seconds after each iteration (the report's loss-vs-time curve)

    ckpt = run_dir / CHECKPOINT if run_dir else None
    if resume and ckpt is not None and ckpt.exists():
        with safe_open(str(ckpt), framework="pt") as f:
            meta = json.loads(f.metadata()["meta"])
        if _comparable(meta["config"]) != _comparable(config.to_dict()):
            raise ValueError(f"the checkpoint in {run_dir} was made with a different configuration; "
                             f"resume with the same options, or use a new --out")
        t = load_file(str(ckpt))
        with torch.no_grad():
            images.copy_(t["images"].to(device))
        if "momentum" in t:
            opt.state[images]["momentum_buffer"] = t["momentum"].to(device)
        if avg is not None:
            avg.copy_(t["ema"].to(device))
        generator.set_state(t["generator"])
        if nets is not None:
            nets.load(t, meta, device)
        start, history, prior_seconds = meta["iteration"], meta["history"], meta["seconds"]
        elapsed = meta.get("elapsed", [])
        log(f"resumed from {ckpt} at iteration {start}")
    elif resume:
        log("no checkpoint found; starting from scratch")

    def momentum_buffer():
        return opt.state[images].get("momentum_buffer") if images in opt.state else None

    def snapshot():
        buf = momentum_buffer()
        return (images.detach().clone(), buf.clone() if buf is not None else None,
                avg.clone() if avg is not None else None)

    def restore(state):
        with torch.no_grad():
            images.copy_(state[0])
        if state[1] is None:
            opt.state.pop(images, None)
        else:
            momentum_buffer().copy_(state[1])
        if avg is not None:
            avg.copy_(state[2])

    def result():
        return (avg if avg is not None else images).detach()

    def save(iteration, gen_state, seconds):
        if run_dir is not None:
            _save_checkpoint(run_dir, images=images, momentum=momentum_buffer(), gen_state=gen_state,
                             iteration=iteration, history=history, elapsed=elapsed, config=config,
                             seconds=seconds, extra=extra_state())

    def extra_state():
        tensors, meta = nets.state() if nets is not None else ({}, {})
        if avg is not None:
            tensors = {**tensors, "ema": avg.detach().cpu().contiguous()}
        return tensors, meta

    t0 = time.perf_counter()
    test = None
    it_seconds: list[float] = []  # this session's per-iteration wall-clock (benchmarks)
    it, stepped, gen_state, before = start, False, generator.get_state(), None
    bar = tqdm(range(start, iterations), desc=f"{method.name} ipc{ipc}", disable=not progress,
               initial=start, total=iterations, mininterval=1.0)
    try:
        for it in bar:
            stepped, gen_state = False, generator.get_state()
            if nets is not None:
                nets.begin()
            t_it = time.perf_counter()
            if nets is not None:
                pool_index = nets.next(it, generator)
                net = nets.nets[pool_index]
            else:
                net = build_net(generator)
            pick = torch.stack([ix[torch.randperm(len(ix), generator=generator)[:n_real].to(device)]
                                for ix in by_class_dev])
            real = normalize(pool[pick.flatten()], info.mean, info.std)
            params = augment.sample(mc.dsa, classes, max(n_real, n_syn), tuple(info.size),
                                    generator=generator, device=device)
            real_aug = augment.apply(real, params, classes, mc.dsa)
            if mc.channels_last:
                real_aug = real_aug.contiguous(memory_format=torch.channels_last)
            means = method.real_means(net, real_aug, classes, config=config,
                                      chunk=mc.embed_chunk or n_real, autocast=autocast_ctx,
                                      embed_real=embed_real)
            # A Ctrl-C before this iteration is complete (its image step(s), average update and
            # pool training) restores the iteration's start, so resume stays exact.
            before = snapshot()
            if mc.lr_schedule == "cosine":
                for group in opt.param_groups:
                    group["lr"] = cosine_lr(mc.lr_img, it, iterations)
            for inner in range(mc.inner_steps):
                syn_aug = augment.apply(decode(images, labels, factor)[0], params, classes,
                                        mc.dsa)  # same draw each step
                if mc.channels_last:
                    syn_aug = syn_aug.contiguous(memory_format=torch.channels_last)
                if syn_loss is not None:
                    with autocast_ctx():
                        loss = syn_loss(net, means, syn_aug)
                else:
                    loss = method.syn_loss(net, means, syn_aug, classes, config=config,
                                           autocast=autocast_ctx)
                current = float(loss.detach())
                if not inner:  # the loss on a fresh network, comparable across inner_steps
                    value = current
                if not math.isfinite(current):
                    if before is not None:
                        restore(before)
                    if nets is not None:
                        nets.rollback()
                    save(it, gen_state, prior_seconds + time.perf_counter() - t0)
                    raise FloatingPointError(
                        f"{method.name}: the matching loss became {current} at "
                        f"iteration {it}; the last good images are saved in "
                        f"{run_dir or '(no run directory)'}. Lower --lr-img or check the data "
                        f"for NaN/inf.")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            if avg is not None:
                ema_update(avg, images.detach(), mc.ema)
            if nets is not None:
                nets.train(pool_index, generator)
            stepped, before = True, None
            history.append(value)
            elapsed.append(round(prior_seconds + time.perf_counter() - t0, 3))
            dt = time.perf_counter() - t_it
            it_seconds.append(dt)
            bar.set_postfix(loss=f"{value:.3f}", real_img_s=f"{classes * n_real / dt:.0f}")
            done = it + 1
            if mc.checkpoint_every and done % mc.checkpoint_every == 0 and done < iterations:
                save(done, generator.get_state(), prior_seconds + time.perf_counter() - t0)
            if mc.eval_every and done % mc.eval_every == 0 and run_dir is not None and data:
                if test is None:
                    test = load_dataset(data, "test")
                _log_eval(run_dir, *decode(result(), labels, factor), test, config, done, value,
                          prior_seconds + time.perf_counter() - t0, device)
            if on_step is not None:
                on_step(done, result(), prior_seconds + time.perf_counter() - t0)
            if deadline is not None and time.perf_counter() >= deadline:
                iterations = done
                break
    except KeyboardInterrupt:
        # Save the last consistent state: after this iteration's step(s), or before them.
        if stepped or (nets is not None and nets.done):
            save(it + 1, generator.get_state(), prior_seconds + time.perf_counter() - t0)
        else:
            if before is not None:
                restore(before)
            if nets is not None:
                nets.rollback()
            save(it, gen_state, prior_seconds + time.perf_counter() - t0)
        log(f"\ninterrupted: checkpoint saved in {run_dir}; rerun with --resume to continue")
        raise
    finally:
        bar.close()
    seconds = prior_seconds + time.perf_counter() - t0
    save(iterations, generator.get_state(), seconds)
    return MethodOutput(images=result().cpu(), labels=labels,
                        metadata={"iterations": iterations, "batch_real": n_real,
                                  "flops_per_iteration": per_it, "distill_flops": per_it * iterations,
                                  "loop_seconds": seconds,
                                  "final_loss": history[-1] if history else None, "factor": factor,
                                  "iteration_seconds": it_seconds})


def cosine_lr(base: float, iteration: int, total: int) -> float:
    """Cosine annealing without restarts (Loshchilov & Hutter, ICLR 2017, Eq. 5 with
    eta_min = 0): base * (1 + cos(pi * iteration / total)) / 2, from ``base`` at iteration 0
    towards 0 at ``total``. A function of the iteration alone, so a resumed run follows the
    same schedule."""
    return base * 0.5 * (1.0 + math.cos(math.pi * iteration / max(total, 1)))


def ema_update(avg: torch.Tensor, x: torch.Tensor, decay: float) -> torch.Tensor:
    """In place, avg <- decay * avg + (1 - decay) * x: the exponential form of Polyak-Ruppert
    iterate averaging (Polyak & Juditsky, SIAM J. Control Optim. 1992, who average the iterates
    uniformly; the exponential weights forget the starting point). Applied to the
    synthetic images, it averages out the noise of the last steps, each taken in one random
    network on one real batch."""
    return avg.mul_(decay).add_(x, alpha=1.0 - decay)


def iteration_flops(method, config: DistillConfig, info, n_real: int) -> int:
    """FLOPs of one matching iteration (real forward + inner_steps x synthetic forward and
    backward), counted by FlopCounterMode on meta tensors, so nothing is computed. DSA and element-wise
    ops (norms, attention maps) count as zero, as everywhere in ``synthset.flops``."""
    mc = config.match
    classes = info.num_classes
    net = build_model(mc.model, info.channels, classes, info.size).to("meta")
    for p in net.parameters():
        p.requires_grad_(False)
    real = torch.empty(classes * n_real, info.channels, *info.size, device="meta")
    syn = torch.empty(classes * config.ipc * mc.factor ** 2, info.channels, *info.size, device="meta",
                      requires_grad=True)

    def real_path():
        return method.real_means(net, real, classes, config=config, chunk=n_real)

    means = real_path()

    def syn_step():
        method.syn_loss(net, means, syn, classes, config=config).backward()

    pool_train = 0
    if mc.net_pool and mc.net_train_steps:  # the pool network's SGD steps on real images
        trained = build_model(mc.model, info.channels, classes, info.size).to("meta")
        pool_train = round(mc.net_train_steps * mc.net_train_batch
                           * train_step_flops(trained, (info.channels, *info.size)))
    return count_flops(real_path) + mc.inner_steps * count_flops(syn_step) + pool_train


def _log_eval(run_dir: Path, images, labels, test: ImageData, config: DistillConfig,
              iteration: int, loss: float, seconds: float, device) -> None:
    """Evaluate the current set with a reduced protocol and append it to log.jsonl. The
    evaluation uses its own generators, so it never changes the distillation's course."""
    from .evaluate import evaluate, for_dataset
    mc = config.match
    tcfg = for_dataset(TrainConfig(epochs=mc.eval_epochs), test.info.name)
    rep = evaluate(images.detach(), labels, test,
                   EvalConfig(models=(mc.model,), runs=mc.eval_runs, train=tcfg),
                   device=device, progress=False, log=lambda m: None)
    m = rep["models"][mc.model]
    with open(run_dir / LOG, "a") as f:
        f.write(json.dumps({"iteration": iteration, "loss": loss, "distill_seconds": seconds,
                            "accuracy": m["mean"], "std": m["std"], "eval_epochs": mc.eval_epochs,
                            "eval_runs": mc.eval_runs}) + "\n")
