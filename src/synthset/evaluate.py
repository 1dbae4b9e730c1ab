"""The field's evaluation protocol: train fresh networks on a (synthetic) training set,
test on the real test set; several runs x architectures; mean and std at the final epoch.

Follows DC/DSA/DM ``evaluate_synset``: SGD (lr 0.01, momentum 0.9, wd 5e-4), lr x0.1 at
half the epochs, batch 256, DSA on every training batch, cross-entropy; the reported
number is the test accuracy after the last epoch (never a best-epoch pick).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from . import augment
from .atomic import append_line, read_jsonl, write_json
from .config import EvalConfig, TrainConfig
from .data.base import DatasetInfo, ImageData
from .engine.rundir import evaluating
from .compute import Compute, given, resolve
from .device import onednn_off, peak_memory_mib, synchronize
from .dpsgd import dp_bench
from .flops import inference_flops, train_step_flops
from .metrics import accuracy, balanced_accuracy, class_recall, roc_auc
from .models import build_model
from .provenance import machine
from .dpsgd import train_protocol
from .training import run_seed


@dataclass
class RunResult:
    model: str
    run: int
    seed: int
    accuracy: float
    balanced_accuracy: float
    auc: Optional[float]
    epochs: int
    steps: int
    train_seconds: float
    test_seconds: float
    final_train_loss: float
    peak_memory_mib: Optional[float] = None  # of the process that trained the run
    class_recall: Optional[list] = None  # % per class (None: absent); older logs lack it
    # with test-time augmentation: the plain view's scores of the same network (in %)
    single_view: Optional[dict] = None
    dp: Optional[dict] = None  # DP-SGD (--dp-epsilon): the accountant's epsilon and settings


def _scores(pred: torch.Tensor, score: torch.Tensor, target: torch.Tensor, k: int) -> dict:
    """The metrics of one set of predictions (``score``: class probabilities, for the AUC)."""
    return {"accuracy": accuracy(pred, target),
            "balanced_accuracy": balanced_accuracy(pred, target, k),
            "class_recall": class_recall(pred, target, k),
            "auc": roc_auc(score[:, 1], target) if k == 2 else None}


@torch.no_grad()
def test_network(net: torch.nn.Module, test: ImageData, *, compute: Optional[Compute] = None,
                 device: Optional[torch.device] = None, batch: int = 512,
                 tta: bool = False) -> dict:
    """Accuracy, balanced accuracy and (binary tasks) ROC-AUC on the whole test split.
    ``tta``: predictions average the softmax over the 8 dihedral views of each image; the
    scores of the plain view (the identity, one of the 8) come back under ``single_view``."""
    net.eval()
    scores, plain = [], []
    compute = given(compute, device)
    device, autocast = compute.device, compute.autocast("train")
    synchronize(device)
    t0 = time.perf_counter()
    # fp32 inference without oneDNN was faster on the CPUs measured; bf16 needs oneDNN's kernels
    fp32_cpu = device.type == "cpu" and compute.precision_of("train") == "fp32"
    with onednn_off() if fp32_cpu else contextlib.nullcontext():
        for i in range(0, len(test), batch):
            x = test.normalized(torch.arange(i, min(i + batch, len(test))), device=device)
            probs = []
            for v in augment.dihedral_views(x) if tta else [x]:  # one view at a time: memory
                v = compute.layout(v)
                with autocast():
                    probs.append(torch.softmax(net(v).float(), 1))
            if tta:
                plain.append(probs[0].cpu())  # the identity view
            scores.append((sum(probs) / len(probs)).cpu())
    synchronize(device)
    k = test.info.num_classes
    score = torch.cat(scores)
    out = {**_scores(score.argmax(1), score, test.labels, k),
           "test_seconds": time.perf_counter() - t0}
    if tta:
        p1 = torch.cat(plain)
        out["single_view"] = _scores(p1.argmax(1), p1, test.labels, k)
    return out


def _percent(s: dict) -> dict:
    """``_scores`` as the run logs keep them: in %."""
    return {"accuracy": 100 * s["accuracy"], "balanced_accuracy": 100 * s["balanced_accuracy"],
            "auc": None if s["auc"] is None else 100 * s["auc"],
            "class_recall": [None if r is None else 100 * r for r in s["class_recall"]]}


def evaluate_run(model: str, images: torch.Tensor, labels: torch.Tensor, test: ImageData,
                 cfg: TrainConfig, *, seed: int, run: int, compute: Optional[Compute] = None,
                 device: Optional[torch.device] = None, progress: bool = True, tag: str = "",
                 on_epoch: Optional[Callable[[int, float], None]] = None,
                 world=None, checkpoint: Optional[Path] = None) -> RunResult:
    """One run: a freshly initialised ``model`` trained on (images, labels), then tested.
    ``tag`` separates the seed streams of different kinds of run (e.g. "full"); ``world``
    (several ranks): the run is trained data-parallel over them (``train_network``).
    ``compute``: where and how it trains and tests (``device`` alone: ``cfg``'s policy there).
    ``checkpoint``: the training's state is saved there every few minutes and an interrupted
    run continues from it (``train_network``)."""
    compute = given(compute, device, cfg)
    s = run_seed(seed, model, run, *([tag] if tag else []))
    g = torch.Generator().manual_seed(s)
    info = test.info
    net = build_model(model, info.channels, info.num_classes, info.size, generator=g)
    tr = train_protocol(net, images, labels, info, cfg, generator=g, compute=compute,
                       desc=f"{model} {tag or 'run'} {run}", progress=progress, on_epoch=on_epoch,
                       world=world, checkpoint=checkpoint)
    te = test_network(net, test, compute=compute, batch=cfg.batch_test, tta=cfg.tta)
    sc = _percent(te)
    return RunResult(model=model, run=run, seed=s, accuracy=sc["accuracy"],
                     balanced_accuracy=sc["balanced_accuracy"], auc=sc["auc"], epochs=cfg.epochs,
                     steps=tr["steps"], train_seconds=tr["train_seconds"],
                     test_seconds=te["test_seconds"], final_train_loss=tr["final_train_loss"],
                     peak_memory_mib=round(peak_memory_mib(compute.device), 1),
                     class_recall=sc["class_recall"], dp=tr.get("dp"),
                     single_view=_percent(te["single_view"]) if "single_view" in te else None)


def train_full(model: str, train: ImageData, test: ImageData, cfg: TrainConfig, *, seed: int,
               run: int, compute: Optional[Compute] = None,
               device: Optional[torch.device] = None, progress: bool = True,
               on_epoch: Optional[Callable[[int, float], None]] = None) -> RunResult:
    """Full-data reference: a fresh ``model`` trained on the whole (uint8) training split."""
    return evaluate_run(model, train.images, train.labels, test, cfg, seed=seed, run=run,
                        compute=compute, device=device, progress=progress, tag="full",
                        on_epoch=on_epoch)


def summarize(runs: list[RunResult], *, n_train: int, info: DatasetInfo, model: str) -> dict:
    """Mean and (population, as the field reports) std over runs, plus cost figures."""
    acc = [r.accuracy for r in runs]
    bal = [r.balanced_accuracy for r in runs]
    out = {"mean": float(np.mean(acc)), "std": float(np.std(acc)), "runs": acc,
           "epochs": runs[0].epochs, "balanced_accuracy": {"mean": float(np.mean(bal)),
                                                           "std": float(np.std(bal)), "runs": bal},
           "train_seconds": [r.train_seconds for r in runs],
           "test_seconds": [r.test_seconds for r in runs], "steps": runs[0].steps,
           "seeds": [r.seed for r in runs]}
    if all(r.class_recall is not None for r in runs):  # runs logged before it was recorded lack it
        out["class_recall"] = {}
        for c, name in enumerate(info.class_names):
            rec = [r.class_recall[c] for r in runs]
            if None not in rec:
                out["class_recall"][name] = {"mean": float(np.mean(rec)), "std": float(np.std(rec)), "runs": rec}
    if runs[0].auc is not None:
        auc = [r.auc for r in runs]
        out["auc"] = {"mean": float(np.mean(auc)), "std": float(np.std(auc)), "runs": auc}
    if all(r.dp is not None for r in runs):
        out["dp"] = {**{k: v for k, v in runs[0].dp.items() if k != "epsilon"},
                     "epsilon": [r.dp["epsilon"] for r in runs]}
    if all(r.single_view is not None for r in runs):
        out["single_view"] = {m: {"mean": float(np.mean(v)), "std": float(np.std(v)), "runs": v}
                              for m in ("accuracy", "balanced_accuracy", "auc")
                              if None not in (v := [r.single_view[m] for r in runs])}
    net = build_model(model, info.channels, info.num_classes, info.size)
    per_img_train = train_step_flops(net, (info.channels, *info.size))
    out["flops"] = {"inference_per_image": inference_flops(net, (info.channels, *info.size)),
                    "train_per_image_step": per_img_train,
                    "train_total": per_img_train * n_train * runs[0].epochs}
    return out


def _config_key(cfg: EvalConfig, n_train: int, tag: str = "") -> str:
    d = asdict(cfg)
    d.pop("models")
    d.pop("runs")
    if d.get("split", "test") == "test":
        d.pop("split", None)
    # options added later (dihedral, tta, cutmix, the tag) join the key only when set, so the
    # keys of existing run logs do not change
    for opt in ("dihedral", "tta", "cutmix"):
        if not d["train"][opt]:
            del d["train"][opt]
    if d["train"]["dp_epsilon"] is None:
        for opt in ("dp_epsilon", "dp_delta", "dp_max_grad_norm"):
            del d["train"][opt]
    return hashlib.sha256(json.dumps([d, n_train] + ([tag] if tag else []), sort_keys=True)
                          .encode()).hexdigest()[:16]


def resolve_compute(cfg: EvalConfig, images: torch.Tensor, device: torch.device,
                    log: Callable[[str], None] = print) -> dict[str, Compute]:
    """Per model, the compute policy of its runs: ``cfg.train``'s precision (``auto``: timed
    on a few steps of the protocol's step on a batch of the set's shape, compiled if the
    runs are), compilation and memory format, on ``device``."""
    t = cfg.train
    shape = tuple(images.shape[1:])
    bs = min(t.batch_size, images.shape[0])
    base = Compute(device=device, compile=t.compile, channels_last=t.channels_last)
    out = {}
    for model in cfg.models:
        detail = (f"{model} {'x'.join(map(str, shape))} batch {bs} compile={t.compile} "
                  f"channels_last={t.channels_last}")
        # DP-SGD runs uncompiled (Opacus's hooks make the per-example gradients); its own
        # step is what is timed
        private = t.dp_epsilon is not None
        bench = dp_bench if private else _train_bench
        out[model] = resolve(device, t.precision, compile=t.compile and not private,
                             channels_last=t.channels_last,
                             passes={"train": ("train" + " DP-SGD" * private, detail,
                                               lambda p, model=model: bench(
                                                   model, shape, bs, t, base.at("train", p)))},
                             log=log)
    return out


def _train_bench(model: str, shape, batch: int, cfg: TrainConfig, compute: Compute):
    """One SGD step of the protocol (forward, cross-entropy, backward, update) under ``compute``."""
    g = torch.Generator().manual_seed(0)
    net = compute.place(build_model(model, shape[0], 10, shape[1:], generator=g)).train()
    fwd = compute.compiled(net)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    x = compute.layout(torch.randn(batch, *shape, generator=g))
    y = torch.randint(0, 10, (batch,), generator=g).to(compute.device)
    autocast = compute.autocast("train")

    def step():
        with autocast():
            loss = F.cross_entropy(fwd(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def evaluate(images: torch.Tensor, labels: torch.Tensor, test: ImageData, cfg: EvalConfig, *,
             device: torch.device, out_dir: Optional[Path] = None, progress: bool = True,
             log: Callable[[str], None] = print, workers: int = 1, tag: str = "",
             config_extra: Optional[dict] = None, data_parallel: bool = False,
             world=None) -> dict:
    """Runs x models of the protocol. With ``out_dir``, each finished run is appended to
    ``eval_runs.jsonl`` at once and finished runs of the same config are not redone, so
    an interrupted evaluation resumes where it stopped; the run in progress continues from
    its last checkpoint (``checkpoints/``, saved every 5 minutes, removed once the run is
    logged) instead of from its first epoch. Writes ``eval.json`` (``cfg.split``
    "val": ``eval-val.json`` and ``eval_runs-val.jsonl``; ``test`` is then the validation
    images).

    ``workers`` > 1 (CPU only) trains that many runs at once in separate processes, the
    cores split between them (two 1-thread runs gave 1.14x one 2-thread run on 2 cores).

    ``tag`` separates seed streams: ``"full"`` for the full-data reference (``synthset train``),
    the same stream as ``train_full``. ``config_extra`` joins the saved config (the full-data
    reference records its dataset there, which the report reads).

    Under torchrun (``synthset.distributed``): the runs are spread over the ranks, one run
    per rank at a time, each with the seed it has in one process, and gathered to rank 0
    after every round, which alone writes; ``data_parallel``: every run is trained by all
    ranks together (DDP; the full-data reference). Rank 0 chooses the precision for all.
    ``world``: the ranks to use (default: torchrun's, if any; ``World()`` keeps it to this
    process, as the distillation's periodic evaluation on rank 0 does).
    """
    from .distributed import current
    world = current() if world is None else world
    missing = _check_classes(images, labels, test.info, log)
    if workers > 1 and world.active:
        raise ValueError(f"--workers {workers} forks local processes, and under torchrun each of "
                         f"the {world.size} ranks is already one: drop --workers (the ranks share "
                         f"the runs) or run without torchrun")
    # a second evaluation of the same folder and split is refused, not interleaved
    lock = (evaluating(out_dir, cfg.split) if out_dir and world.is_main
            else contextlib.nullcontext())
    with lock:
        computes = _shared_compute(cfg, images, device, world, log)
        precisions = {m: c.choices["train"] for m, c in computes.items()}
        log_path = out_dir / results_files(cfg.split)[1] if out_dir else None
        key, done, todo = _pending(cfg, precisions, images.shape[0], tag, log_path, world)
        checkpoint, record = _run_keeper(out_dir, world, key, log_path, done, log)
        train_cfg = {m: dataclasses.replace(cfg.train, precision=precisions[m]["precision"])
                     for m in cfg.models}
        done = _train_runs(todo, done, record, images, labels, test, cfg, train_cfg, computes,
                           world=world, workers=workers, tag=tag, progress=progress,
                           data_parallel=data_parallel, checkpoint=checkpoint)
        report = _report(cfg, done, precisions, images, test, device, config_extra)
        if missing:
            report["missing_classes"] = missing
        if world.active:
            report["world_size"] = world.size
        if out_dir and world.is_main:
            write_json(out_dir / results_files(cfg.split)[0], report)
        return report


def _run_keeper(out_dir: Optional[Path], world, key: str, log_path: Optional[Path],
                done: dict, log: Callable[[str], None]):
    """(``checkpoint(model, run)``, ``record(result)``): where a run's mid-run training state
    is kept (one process with ``out_dir`` only: ``checkpoints/``, one file per run), and the
    step that logs a finished run to ``done`` and the run log, then removes its state."""
    ckpt_dir = out_dir / "checkpoints" if out_dir and not world.active else None

    def checkpoint(model: str, run: int) -> Optional[Path]:
        return ckpt_dir / f"{key}-{model}-run{run}.pt" if ckpt_dir else None

    def record(res: RunResult) -> None:
        done[(res.model, res.run)] = res
        if world.is_main:
            _log_run(res, log_path, key, log)
        if ckpt_dir:
            checkpoint(res.model, res.run).unlink(missing_ok=True)
            if ckpt_dir.is_dir() and not any(ckpt_dir.iterdir()):
                ckpt_dir.rmdir()
    return checkpoint, record


def _shared_compute(cfg: EvalConfig, images, device, world, log) -> dict[str, Compute]:
    """Rank 0 times and decides each network's arithmetic (``resolve_compute``); every rank
    computes it on its own device."""
    chosen = world.broadcast(resolve_compute(cfg, images, device, log) if world.is_main else None)
    return {m: dataclasses.replace(c, device=device) for m, c in chosen.items()}


def _pending(cfg: EvalConfig, precisions: dict, n_train: int, tag: str,
             log_path: Optional[Path], world) -> tuple[str, dict, list]:
    """The run-log key of this evaluation, its runs already logged and the (model, run)
    pairs still to train; rank 0's log decides (the ranks need no shared disk)."""
    key = _precision_key(cfg, {m: p["precision"] for m, p in precisions.items()}, n_train, tag)
    done = _finished_runs(log_path, key)
    todo = [(m, r) for m in cfg.models for r in range(cfg.runs) if (m, r) not in done]
    done, todo = world.broadcast((done, todo))
    return key, done, todo


def _precision_key(cfg: EvalConfig, chosen: dict[str, str], n_train: int, tag: str) -> str:
    """The key of a config's runs in the run log. Runs of a config are those of the same
    arithmetic: auto is keyed by what it chose (so an auto run that chose fp32 resumes, and
    is resumed by, an explicit fp32 run)."""
    if len(set(chosen.values())) == 1:
        return _config_key(dataclasses.replace(cfg, train=dataclasses.replace(
            cfg.train, precision=next(iter(chosen.values())))), n_train, tag)
    return _config_key(cfg, n_train, tag + "|" + json.dumps(chosen, sort_keys=True))


def _log_run(res: RunResult, log_path: Optional[Path], key: str, log) -> None:
    """Print a finished run and append it to the run log at once (an interruption loses
    only the run in progress)."""
    log(f"{res.model} run {res.run}: {res.accuracy:.2f}% (balanced {res.balanced_accuracy:.2f}%) "
        f"in {res.train_seconds:.1f}s")
    if log_path:
        append_line(log_path, json.dumps({**asdict(res), "config_key": key}))


def _finished_runs(log_path: Optional[Path], key: str) -> dict[tuple[str, int], RunResult]:
    """The runs of ``key`` already in the run log (a line cut by an interruption is skipped)."""
    done: dict[tuple[str, int], RunResult] = {}
    if not log_path:
        return done
    for rec in read_jsonl(log_path):
        if rec.get("config_key") == key:
            rec.pop("config_key")
            done[(rec["model"], rec["run"])] = RunResult(**rec)
    return done


def _train_runs(todo, done, record, images, labels, test, cfg, train_cfg, computes, *, world,
                workers, tag, progress, data_parallel, checkpoint) -> dict:
    """Train the runs still to do: spread over torchrun's ranks (one run each per round, or
    every run data-parallel), over local worker processes, or one after another (these two
    keep each run's training state at ``checkpoint(model, run)``)."""
    if world.active and not data_parallel:
        for i in range(0, len(todo), world.size):  # a round: one run per rank
            mine = todo[i + world.rank] if i + world.rank < len(todo) else None
            res = None if mine is None else evaluate_run(
                mine[0], images, labels, test, train_cfg[mine[0]], seed=cfg.seed, run=mine[1],
                compute=computes[mine[0]], progress=False, tag=tag)
            for r in world.gather(res) or []:
                if r is not None:
                    record(r)
        return world.broadcast(done)
    if world.active:
        for m, r in todo:
            record(evaluate_run(m, images, labels, test, train_cfg[m], seed=cfg.seed, run=r,
                                compute=computes[m], progress=progress and world.is_main, tag=tag,
                                world=world))
    elif workers > 1 and all(c.device.type == "cpu" for c in computes.values()) and len(todo) > 1:
        _evaluate_parallel(todo, images, labels, test, cfg, workers, record, tag, progress,
                           train_cfg, computes, checkpoint)
    else:
        for m, r in todo:
            record(evaluate_run(m, images, labels, test, train_cfg[m], seed=cfg.seed, run=r,
                                compute=computes[m], progress=progress, tag=tag,
                                checkpoint=checkpoint(m, r)))
    return done


def _report(cfg: EvalConfig, done, precisions, images, test, device, config_extra) -> dict:
    """eval.json's content: each model's summary over its runs, the config, the machine."""
    results: dict[str, dict] = {}
    for model in cfg.models:
        runs = [done[(model, r)] for r in range(cfg.runs)]
        results[model] = summarize(runs, n_train=images.shape[0], info=test.info, model=model)
        results[model]["precision"] = precisions[model]
    return {"models": results, "config": {**cfg.to_dict(), **(config_extra or {})},
            "split": cfg.split, "n_train": int(images.shape[0]),
            "device": str(device), "machine": machine(),
            # the largest over this process and every run's own process, kept across
            # resumed runs through the run log
            "peak_memory_mib": max([round(peak_memory_mib(device), 1)]
                                   + [r.peak_memory_mib for r in done.values() if r.peak_memory_mib])}


def _check_classes(images: torch.Tensor, labels: torch.Tensor, info, log) -> list[str]:
    """Refuse an empty set; warn of (and return) the classes a set has no image of."""
    if images.shape[0] == 0:
        raise ValueError("the set holds no images: there is nothing to train on")
    missing = missing_classes(labels, info)
    if missing:
        log(f"warning: the set has no image of {len(missing)} of {info.num_classes} "
            f"classes ({', '.join(missing)}); a network trained on it cannot predict them, so "
            f"expect at most {100 * (1 - len(missing) / info.num_classes):.0f}% on a "
            f"balanced test set")
    return missing


def missing_classes(labels: torch.Tensor, info) -> list[str]:
    """Names of the dataset's classes that no image of the set carries."""
    present = set(labels.flatten().tolist())
    return [name for c, name in enumerate(info.class_names) if c not in present]


def results_files(split: str) -> tuple[str, str]:
    """(summary, per-run log) file names of an evaluation on ``split``: the test split's are
    ``eval.json`` and ``eval_runs.jsonl``; the validation split's carry ``-val``, so scores
    of the two splits never mix."""
    return ("eval.json", "eval_runs.jsonl") if split == "test" else \
        (f"eval-{split}.json", f"eval_runs-{split}.jsonl")


def task_threads(cores: int, workers: int, n_tasks: int) -> list[int]:
    """Threads for each of ``n_tasks`` runs trained ``workers`` at a time: an equal share of
    the cores, except that the runs of a last, partial round share the cores among
    themselves (3 runs on 2 workers: the third gets both cores, not one)."""
    full = n_tasks // workers * workers
    return [max(1, cores // (workers if i < full else n_tasks - full)) for i in range(n_tasks)]


def _run_with_threads(task: tuple) -> RunResult:
    threads, every, args, kwargs = task
    torch.set_num_threads(threads)
    if every:  # progress bars of two processes would overwrite each other: lines instead
        (model, *_, train_cfg), run = args, kwargs["run"]
        epochs = train_cfg.epochs

        def on_epoch(ep: int, loss: float) -> None:
            if (ep + 1) % every == 0 or ep + 1 == epochs:
                print(f"{model} run {run}: epoch {ep + 1}/{epochs}, train loss {loss:.3f}",
                      file=sys.stderr, flush=True)
        kwargs = {**kwargs, "on_epoch": on_epoch}
    return evaluate_run(*args, **kwargs)


def _evaluate_parallel(todo, images, labels, test, cfg: EvalConfig, workers: int, record,
                       tag: str, progress: bool, train_cfg: dict, computes: dict,
                       checkpoint: Callable[[str, int], Optional[Path]]) -> None:
    import multiprocessing as mp
    threads = task_threads(torch.get_num_threads(), workers, len(todo))
    every = max(1, cfg.train.epochs // 10) if progress else 0
    tasks = [(t, every, (m, images, labels, test, train_cfg[m]),
              dict(seed=cfg.seed, run=r, compute=computes[m], progress=False, tag=tag,
                   checkpoint=checkpoint(m, r)))
             for t, (m, r) in zip(threads, todo)]
    # A Pool, not a ProcessPoolExecutor: leaving the block on an exception (Ctrl-C, or the
    # SIGTERM the CLI turns into one) terminates the workers instead of waiting for runs
    # that take an hour, or leaving them orphaned if the parent dies.
    with mp.get_context("spawn").Pool(workers) as pool:
        for res in pool.imap_unordered(_run_with_threads, tasks):
            record(res)
        pool.close()  # all done: let the workers exit and free their queues
        pool.join()


def format_table(report: dict, title: str = "") -> str:
    rows = [title] if title else []
    has_auc = any("auc" in v for v in report["models"].values())
    head = f"{'model':<12} {'acc % (mean ± std)':>20} {'balanced %':>16}" + (f" {'AUC %':>14}" if has_auc else "") \
        + f" {'runs':>5} {'epochs':>6} {'s/run':>7}"
    rows += [head, "-" * len(head)]
    for name, v in report["models"].items():
        line = f"{name:<12} {v['mean']:>12.2f} ± {v['std']:<5.2f} " \
               f"{v['balanced_accuracy']['mean']:>9.2f} ± {v['balanced_accuracy']['std']:<4.2f}"
        if has_auc:
            a = v.get("auc")
            line += f" {a['mean']:>7.2f} ± {a['std']:<4.2f}" if a else f" {'-':>14}"
        line += f" {len(v['runs']):>5} {v['epochs']:>6} {np.mean(v['train_seconds']):>7.1f}"
        if "dp" in v:  # DP-SGD: the accountant's epsilon of each run
            line += f"  DP-SGD epsilon {max(v['dp']['epsilon']):.2f} (delta {v['dp']['delta']:g})"
        rows.append(line)
        if "single_view" in v:  # the same networks, scored without test-time augmentation
            sv = v["single_view"]
            line = f"{'  1 view':<12} {sv['accuracy']['mean']:>12.2f} ± {sv['accuracy']['std']:<5.2f} " \
                   f"{sv['balanced_accuracy']['mean']:>9.2f} ± {sv['balanced_accuracy']['std']:<4.2f}"
            if has_auc and "auc" in sv:
                line += f" {sv['auc']['mean']:>7.2f} ± {sv['auc']['std']:<4.2f}"
            rows.append(line)
    return "\n".join(rows)
