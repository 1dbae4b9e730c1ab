"""The method-independent run of a learned distillation method.

The runner owns the state of a run (``RunState``: images, optimiser, generator, iteration),
the initial images, checkpoints and exact resume, the one rollback path shared by a NaN loss
and an interrupt, the iterate average (EMA), the lr schedule, the time budget, periodic
logging and evaluation, and the multi-formation encoding of the start. Each iteration it
calls the method's ``step(ctx, state, generator)``, which samples what it needs from the
generator and calls ``state.step(loss)`` for each image update. All randomness comes from
that one generator, so a run checkpointed at iteration k and resumed gives exactly the
images of an uninterrupted run.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from tqdm.auto import tqdm

from ..atomic import append_line
from ..config import DataConfig, DistillConfig, EvalConfig, TrainConfig
from ..data.base import ImageData, class_indices, normalize
from ..compute import Compute, fixed
from ..distributed import World
from ..formation import decode, encode, tile_size
from ..models import build_model
from ..synthetic import MethodOutput
from . import checkpoint
from .schedule import cosine_lr, ema_update
from .state import NonFiniteLoss, RunState

LOG = "log.jsonl"


@dataclass
class RunContext:
    """What a method's step sees, fixed for the run. ``aux`` is what the method's
    ``prepare`` returned (compiled paths, a network pool); if it has ``begin``/``rollback``/
    ``state``/``load`` the runner calls them with the iteration's rollback and checkpoints."""

    train: ImageData
    config: DistillConfig
    options: Any  # the method's options dataclass
    device: torch.device
    iterations: int
    n_real: int  # real images per class per batch
    n_syn: int  # training (decoded) synthetic images per class
    lr_img: float
    pool: torch.Tensor  # the training split's uint8 images on the device
    by_class: list[torch.Tensor]  # per-class indices (CPU)
    by_class_device: list[torch.Tensor]
    aux: Any = None
    # the compute policy: each pass's precision ("real": no-grad real forward, "syn":
    # synthetic forward + backward), resolved from --precision (auto: synthset.autotune)
    # before the first step, with --compile and --channels-last
    compute: Compute = None  # type: ignore[assignment]
    # the ranks of a torchrun run (synthset.distributed): each forwards its shard of the
    # real batch; everything else is the same on every rank
    world: World = field(default_factory=World)
    log: Callable[[str], None] = print

    @property
    def engine(self):
        return self.config.engine

    @property
    def info(self):
        return self.train.info

    @property
    def classes(self) -> int:
        return self.train.info.num_classes

    def __post_init__(self) -> None:
        if self.compute is None:  # until resolve_compute times auto: auto runs fp32
            ec = self.engine
            self.compute = fixed(self.device, ec.precision, kinds=("real", "syn"),
                                 compile=ec.compile, channels_last=ec.channels_last)

    @property
    def autocast(self):
        """The synthetic pass's autocast (with autograd)."""
        return self.compute.autocast("syn")

    @property
    def real_autocast(self):
        """The real batch's no-grad forward's autocast."""
        return self.compute.autocast("real")

    def build_net(self, generator: Optional[torch.Generator], *, frozen: bool = True):
        """A freshly initialised ``--model`` in train mode (frozen: no parameter gradients)."""
        info = self.info
        net = build_model(self.engine.model, info.channels, info.num_classes, info.size,
                          generator=generator).to(self.device)
        net.train()
        for p in net.parameters():
            p.requires_grad_(not frozen)
        return self.compute.place(net)

    def real_shard(self, generator: torch.Generator, n: Optional[int] = None
                   ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """``n`` (default ``n_real``) random real images of every class, this rank's part:
        every rank draws the same indices (one generator stream) and keeps its
        ``World.positions`` among them. Returns the images (class-major, normalised) and
        the positions (for the siamese augmentation; None in a world of one: all)."""
        n = n or self.n_real
        pick = torch.stack([ix[torch.randperm(len(ix), generator=generator)[:n].to(self.device)]
                            for ix in self.by_class_device])
        pos = None
        if self.world.active:
            pos = self.world.positions(n)
            pick = pick[:, pos.to(self.device)]
        return normalize(self.pool[pick.flatten()], self.info.mean, self.info.std), pos

    def reduce_means(self, tensors, positions: Optional[torch.Tensor]) -> list:
        """Per-rank means over ``positions`` of the ``n_real`` -> the means over the whole
        batch on every rank (weighted sum over ranks). A world of one: unchanged."""
        tensors = list(tensors)
        if positions is None:
            return tensors
        out = [t * (len(positions) / self.n_real) for t in tensors]
        self.world.sum_(out)
        return out

    def memory_format(self, x: torch.Tensor) -> torch.Tensor:
        return self.compute.layout(x)


def make_context(method, train: ImageData, config: DistillConfig, options, device,
                 world: World = World()) -> RunContext:
    """Resolve the method's defaults and check the sizes (before any work)."""
    ec = config.engine
    by_class = class_indices(train, config.ipc)
    n_syn = config.ipc * ec.factor ** 2
    class_indices(train, n_syn)
    tile_size(*train.info.size, ec.factor)  # a factor that does not divide the size fails here
    batch_real = ec.batch_real or method.default_batch_real
    return RunContext(train=train, config=config, options=options, device=device,
                      iterations=ec.iterations if ec.iterations is not None else method.default_iterations,
                      n_real=min(batch_real, min(len(ix) for ix in by_class)), n_syn=n_syn,
                      lr_img=ec.lr_img if ec.lr_img is not None else method.default_lr_img,
                      pool=train.images.to(device), by_class=by_class,
                      by_class_device=[ix.to(device) for ix in by_class], world=world)


def resolve_compute(method, ctx: RunContext, log: Callable[[str], None]) -> dict:
    """The run's compute policy (``ctx.compute``): each pass's precision from ``--precision``
    (``auto``: ``synthset.autotune``, timed through the method's own benches on the run's
    shapes, so the compiled paths the run uses are the ones warmed up) and, for a compiled
    CPU synthetic pass, its layout. Returns what to record."""
    from ..autotune import choose_layout
    from ..compute import resolve
    ec, info = ctx.engine, ctx.info
    shape = f"{ec.model} {info.channels}x{info.size[0]}x{info.size[1]}"
    knob = method.layout_knob(ctx)
    if ctx.world.is_main:
        passes = {kind: (f"distill-{kind}", f"{method.name} {shape} {ctx.classes}x{n} per class "
                         f"compile={ec.compile} channels_last={ec.channels_last}",
                         lambda p, kind=kind: method.bench(ctx, kind, p))
                  for kind, n in (("real", ctx.n_real), ("syn", ctx.n_syn))}
        out = dict(resolve(ctx.device, ec.precision, compile=ec.compile,
                           channels_last=ec.channels_last, passes=passes, log=log,
                           allow_bf16={"real": method.bf16_auto, "syn": method.bf16_auto}).choices)
        if knob is not None:
            chosen = out["syn"]["precision"]
            detail = (f"{method.name} {shape} {ctx.classes}x{ctx.n_syn} per class "
                      f"{chosen} channels_last={ec.channels_last}")

            def bench(layout):
                step = method.bench(ctx, "syn", chosen)

                def run():  # the layout is read per call, and autotune interleaves the candidates
                    knob.layout = layout
                    step()
                return run
            out["syn"] = {**out["syn"], **choose_layout("distill-syn-layout", detail, ctx.device,
                                                        bench, log=log)}
    # rank 0 times and decides; the ranks must run the same arithmetic
    out = ctx.world.broadcast(out if ctx.world.is_main else None)
    ctx.compute = Compute(device=ctx.device, precision={k: v["precision"] for k, v in out.items()},
                          compile=ec.compile, channels_last=ec.channels_last, choices=out)
    if knob is not None and "layout" in out["syn"]:
        knob.layout = out["syn"]["layout"]
    if ec.precision == "auto":
        log(f"precision auto: real pass {out['real']['precision']}, synthetic pass "
            f"{out['syn']['precision']} ({out['real']['source']})")
    return out


def initial_state(ctx: RunContext, generator: torch.Generator,
                  start: Optional[Callable[[int], torch.Tensor]] = None) -> RunState:
    """The images at iteration 0: random real images of each class, noise, or the training
    images ``start(k)`` indexes (k per class, class-major: the herding coreset), encoded
    into tiles with ``factor``. The real images' indices are kept in ``start_indices``
    (what a membership audit asks first: which members does the set start from?)."""
    ec, info, ipc = ctx.engine, ctx.info, ctx.config.ipc
    idx = None
    if ec.init == "real":
        idx = torch.cat([ix[torch.randperm(len(ix), generator=generator)[:ctx.n_syn]]
                         for ix in ctx.by_class])
    elif ec.init == "herding":
        if start is None:
            raise ValueError("init 'herding' needs the herding coreset (synthset.distill passes it)")
        idx = start(ctx.n_syn)
    if idx is not None:
        images = encode(ctx.train.normalized(idx), ec.factor).to(ctx.device)
    else:
        images = torch.randn(ctx.classes * ipc, info.channels, *info.size,
                             generator=generator).to(ctx.device)
    images.requires_grad_(True)
    return RunState(images=images, labels=torch.arange(ctx.classes).repeat_interleave(ipc),
                    factor=ec.factor, generator=generator,
                    optimizer=torch.optim.SGD([images], lr=ctx.lr_img, momentum=ec.momentum),
                    ema=images.detach().clone() if ec.ema else None, start_indices=idx)


def _hook(aux, name: str, *args):
    fn = getattr(aux, name, None)
    return fn(*args) if fn is not None else None


def resume_state(state: RunState, ctx: RunContext, method, run_dir: Optional[Path], log) -> None:
    """Load ``run_dir``'s checkpoint into ``state``; ValueError if its config differs. Under
    torchrun rank 0 reads it and sends it to the others (which need no run directory); the
    checkpoint holds nothing per rank, so a run resumes on any number of ranks."""
    path = run_dir / checkpoint.CHECKPOINT if run_dir is not None else None
    found = ctx.world.broadcast(path is not None and path.exists())
    if not found:
        log("no checkpoint found; starting from scratch")
        return
    tensors, meta = ctx.world.broadcast(checkpoint.read(path) if ctx.world.is_main else None)
    norm = method.normalize_options
    if checkpoint.comparable(meta["config"], norm) != checkpoint.comparable(ctx.config.to_dict(), norm):
        raise ValueError(f"the checkpoint in {run_dir} was made with a different configuration; "
                         f"resume with the same options, or use --overwrite or a new --out")
    with torch.no_grad():
        state.images.copy_(tensors["images"].to(ctx.device))
    if "momentum" in tensors:
        state.optimizer.state[state.images]["momentum_buffer"] = tensors["momentum"].to(ctx.device)
    if state.ema is not None:
        state.ema.copy_(tensors["ema"].to(ctx.device))
    state.generator.set_state(tensors["generator"])
    _hook(ctx.aux, "load", tensors, meta, ctx.device)
    state.iteration, state.history = meta["iteration"], meta["history"]
    state.prior_seconds, state.elapsed = meta["seconds"], meta.get("elapsed", [])
    log(f"resumed from {path} at iteration {state.iteration}")


class Loop:
    """The iterations of one process, with its checkpoints, logging and budget."""

    def __init__(self, method, ctx: RunContext, state: RunState, *, run_dir: Optional[Path],
                 data: Optional[DataConfig], log, progress: bool, on_step) -> None:
        self.method, self.ctx, self.state = method, ctx, state
        self.run_dir, self.data, self.log, self.progress, self.on_step = run_dir, data, log, progress, on_step
        self.t0 = time.perf_counter()
        self.iteration_seconds: list[float] = []
        self.budget = ctx.engine.max_seconds
        self.stopped_by = "iterations"
        self._test = None

    def seconds(self) -> float:
        return self.state.prior_seconds + time.perf_counter() - self.t0

    def save(self, iteration: int, generator_state: torch.Tensor) -> None:
        if self.run_dir is not None and self.ctx.world.is_main:
            checkpoint.save(self.run_dir, self.state, iteration=iteration,
                            generator_state=generator_state, seconds=self.seconds(),
                            config=self.ctx.config.to_dict(), extra=_hook(self.ctx.aux, "state"))

    def iterate(self) -> None:
        """One iteration: the method's step, the average, the bookkeeping."""
        ctx, state, ec = self.ctx, self.state, self.ctx.engine
        t = time.perf_counter()
        if ec.lr_schedule == "cosine":
            state.set_lr(cosine_lr(ctx.lr_img, state.iteration, ctx.iterations))
        value = self.method.step(ctx, state, state.generator)
        if state.ema is not None:
            ema_update(state.ema, state.images.detach(), ec.ema)
        state.iteration += 1
        state.history.append(value)
        state.elapsed.append(round(self.seconds(), 3))
        self.iteration_seconds.append(time.perf_counter() - t)

    def after(self) -> bool:
        """Checkpoint, evaluate, report; False when the time budget is spent."""
        ec, done, state = self.ctx.engine, self.state.iteration, self.state
        if ec.checkpoint_every and done % ec.checkpoint_every == 0 and done < self.ctx.iterations:
            self.save(done, state.generator.get_state())
        if (ec.eval_every and done % ec.eval_every == 0 and self.run_dir is not None and self.data
                and self.ctx.world.is_main):
            self.evaluate(done, state.history[-1])
        if self.on_step is not None:
            self.on_step(done, state.result(), self.seconds())
        # the ranks stop at the same iteration: rank 0's clock decides
        if self.budget is not None and self.ctx.world.broadcast(self.seconds() >= self.budget):
            self.stopped_by = "max_time"
            return False
        return True

    def run(self) -> None:
        """Iterate to the end or the budget. On a NaN loss or an interrupt, the iteration in
        progress is undone (images, momentum, average, generator, the method's own state)
        and the last consistent state is checkpointed: one path for both."""
        ctx, state = self.ctx, self.state
        bar = tqdm(total=ctx.iterations, initial=state.iteration, disable=not self.progress,
                   desc=f"{self.method.name} ipc{ctx.config.ipc}", mininterval=1.0)
        snap = gen_state = None
        try:
            while state.iteration < ctx.iterations:
                snap, gen_state = state.snapshot(), state.generator.get_state()
                _hook(ctx.aux, "begin")
                self.iterate()
                snap = None  # the iteration is complete: nothing to undo
                bar.update(1)
                bar.set_postfix(loss=f"{state.history[-1]:.3f}")
                if not self.after():
                    break
        except (KeyboardInterrupt, NonFiniteLoss):
            if snap is not None:
                state.restore(snap)
                _hook(ctx.aux, "rollback")
                self.save(state.iteration, gen_state)
            else:
                self.save(state.iteration, state.generator.get_state())
            raise
        finally:
            bar.close()

    def evaluate(self, iteration: int, loss: float) -> None:
        """A reduced evaluation of the current set appended to log.jsonl. It uses its own
        generators, so it never changes the distillation's course."""
        from ..data import DATASETS, load_dataset
        from ..evaluate import evaluate
        ec = self.ctx.engine
        if self._test is None:
            # with the validation split held out, the curve is read on it (never on test)
            self._test = load_dataset(self.data, "val" if self.data.holdout_val else "test")
        images, labels = decode(self.state.result(), self.state.labels, self.state.factor)
        # the run's own --precision and layout (auto: timed and cached per network and shape)
        tcfg = DATASETS.get(self.data.name).train_config(TrainConfig(
            epochs=ec.eval_epochs, precision=ec.precision, channels_last=ec.channels_last))
        rep = evaluate(images, labels, self._test,
                       EvalConfig(models=(ec.model,), runs=ec.eval_runs, train=tcfg),
                       device=self.ctx.device, progress=False, log=lambda m: None,
                       world=World())  # rank 0 alone: no collectives while the others iterate
        m = rep["models"][ec.model]
        append_line(self.run_dir / LOG, json.dumps({
            "iteration": iteration, "loss": loss, "distill_seconds": self.seconds(),
            "accuracy": m["mean"], "std": m["std"], "eval_epochs": ec.eval_epochs,
            "split": "val" if self.data.holdout_val else "test", "eval_runs": ec.eval_runs}))


def run(method, train: ImageData, config: DistillConfig, options, *, device: torch.device,
        generator: torch.Generator, log: Callable[[str], None] = print,
        run_dir: Optional[Path] = None, resume: bool = False, data: Optional[DataConfig] = None,
        progress: bool = True, start: Optional[Callable[[int], torch.Tensor]] = None,
        on_step: Optional[Callable[[int, torch.Tensor, float], None]] = None) -> MethodOutput:
    """Run a learned ``method`` on ``train`` and return its images. ``start(k)`` gives the
    ``--init herding`` images' indices in ``train``; ``on_step(iterations_done, images, seconds)`` is called after
    each iteration (snapshots)."""
    from ..device import reuse_freed_memory
    from ..distributed import current
    reuse_freed_memory()
    ctx = make_context(method, train, config, options, device, current())
    ctx.log = log
    per_it = method.iteration_flops(ctx)  # before any work: a bad configuration fails here
    ctx.aux = method.prepare(ctx)
    # work the method did before the first iteration (trained experts): it counts against
    # the time budget and in the set's FLOPs, also when a cache served it
    setup = _hook(ctx.aux, "record") or {}
    paths = resolve_compute(method, ctx, log)
    state = initial_state(ctx, generator, start)
    if resume and (run_dir is not None or ctx.world.active):
        resume_state(state, ctx, method, run_dir, log)
    loop = Loop(method, ctx, state, run_dir=run_dir, data=data, log=log, progress=progress,
                on_step=on_step)
    if loop.budget is not None and setup.get("setup_seconds"):
        loop.budget = max(1e-3, loop.budget - setup["setup_seconds"])
    try:
        loop.run()
    except NonFiniteLoss as e:
        raise FloatingPointError(
            f"{method.name}: the loss became {e.value} at iteration {state.iteration}; the last "
            f"good images are saved in {run_dir or '(no run directory)'}. Lower --lr-img or "
            f"check the data for NaN/inf.") from None
    except KeyboardInterrupt:
        log(f"\ninterrupted: checkpoint saved in {run_dir}; rerun with --resume to continue")
        raise
    loop.save(state.iteration, generator.get_state())
    its = sorted(loop.iteration_seconds)
    return MethodOutput(images=state.result().cpu(), labels=state.labels, factor=state.factor,
                        metadata={"iterations": state.iteration, "batch_real": ctx.n_real,
                                  "lr_img": ctx.lr_img, "stopped_by": loop.stopped_by,
                                  "flops_per_iteration": per_it,
                                  "distill_flops": per_it * state.iteration
                                  + setup.get("setup_flops", 0),
                                  **({"setup": setup} if setup else {}),
                                  "loop_seconds": loop.seconds(),
                                  "final_loss": state.history[-1] if state.history else None,
                                  "median_iteration_seconds": its[len(its) // 2] if its else None,
                                  "precision": paths,
                                  **({"start_indices": state.start_indices.tolist()}
                                     if state.start_indices is not None else {}),
                                  **({"world_size": ctx.world.size, "communication": {
                                      **ctx.world.comm, "per_iteration_bytes":
                                      ctx.world.comm["bytes"] / max(1, len(loop.iteration_seconds))}}
                                     if ctx.world.active else {}),
                                  "iteration_seconds": loop.iteration_seconds})  # benchmarks
