"""DM (and DataDAM) on MNIST: accuracy, speed, cost and time-to-accuracy; writes JSON.

Parts (run one at a time; they share the cores):

  # 1. accuracy: distil at each IPC, evaluate with the full protocol (resumable)
  python benchmarks/dm_mnist.py accuracy --root runs/dm_mnist --ipc 1 10 50 \
      --iterations 1:300 10:300 50:300 --runs 5 --out benchmarks/results/dm_mnist_accuracy_cpu.json
  # 2. speed: s/iteration (ours eager / compiled / bf16, and a reference-style per-class loop)
  python benchmarks/dm_mnist.py speed --out benchmarks/results/dm_mnist_speed_cpu.json
  # 3. cost: FLOPs per iteration and per run, peak memory
  python benchmarks/dm_mnist.py cost --out benchmarks/results/dm_mnist_cost_cpu.json
  # 4. time-to-accuracy: one IPC 10 run, snapshots at wall-clock marks, each evaluated
  python benchmarks/dm_mnist.py tta --root runs/dm_tta --marks 300 600 840 --mark-runs 2 2 5 \
      --out benchmarks/results/dm_mnist_tta_cpu.json
  # ... or one run of a fixed length that must end within a mark (e.g. a cosine schedule):
  python benchmarks/dm_mnist.py tta --root runs/dm_tta_cos --marks 900 --max-iterations 650 \
      --match lr_schedule=cosine --match ema=0.97 ... --out ...
  # ... multi-formation (factor 2: models train on 40 images per class, see README):
  python benchmarks/dm_mnist.py tta --root runs/dm_tta_f2 --marks 300 600 840 --mark-runs 0 0 5 \
      --workers 2 --match batch_real=64 --match init=herding --match ema=0.97 --match factor=2 \
      --features pixels --out benchmarks/results/dm_mnist_tta_f2_cpu.json

``--method datadam`` runs the same parts for DataDAM. Options of the matching loop go through
``--match key=value`` (e.g. ``--match batch_real=64 --match init=herding``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

import sys as _sys; _sys.path.insert(0, __import__('os').path.dirname(__file__))  # legacy_api
from legacy_api import DistillConfig, MatchConfig, for_dataset, machine, match_loop
from synthset import augment
from synthset.config import CoresetConfig, DataConfig, EvalConfig, TrainConfig
from synthset.data import load_dataset
from synthset.data.base import normalize
from synthset.distill import distill
from synthset.evaluate import evaluate
from synthset.flops import count_flops
from synthset.methods import METHODS
from synthset.models import build_model
from synthset.synthetic import SyntheticSet
import sys as _hs; _hs.path.insert(0, __import__('os').path.dirname(__file__))  # noqa: E702
from header import header  # noqa: E402

PAPER = {"dm": {1: 89.7, 10: 97.5, 50: 98.6}}
CPU = torch.device("cpu")


def _value(v: str):
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(v.lower(), v)


def match_config(args, **over) -> MatchConfig:
    kw = dict(compile=True, checkpoint_every=100)
    for item in args.match:
        k, v = item.split("=", 1)
        kw[k] = _value(v)
    kw.update(over)
    return MatchConfig(**kw)


def distill_config(args, ipc: int, **over) -> DistillConfig:
    features = over.pop("features", args.features)
    return DistillConfig(method=args.method, ipc=ipc, seed=args.seed, match=match_config(args, **over),
                         coreset=CoresetConfig(features=features))


def eval_config(args) -> EvalConfig:
    return EvalConfig(models=("ConvNet",), runs=args.runs,
                      train=for_dataset(TrainConfig(epochs=args.epochs, compile=True), "mnist"))


def write(path: str, obj: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(obj, indent=2))


def base_record(args) -> dict:
    return {**header(sys.argv),
            "torch": torch.__version__, "rows": []}


# --- 1. accuracy -------------------------------------------------------------------------

def part_accuracy(args) -> None:
    iters = dict(map(int, s.split(":")) for s in args.iterations)
    test = load_dataset(DataConfig(name="mnist"), "test")
    res = base_record(args)
    for ipc in args.ipc:
        run_dir = Path(args.root) / f"{args.method}_ipc{ipc}"
        if not (run_dir / "synthetic.json").exists():
            distill(DataConfig(name="mnist"), distill_config(args, ipc, iterations=iters[ipc]),
                    out_dir=run_dir, device=args.device, resume=True)
        sset = SyntheticSet.load(run_dir)
        rep = evaluate(*sset.decoded(), test, eval_config(args), device=args.device, out_dir=run_dir,
                       progress=False, workers=args.workers)
        m = rep["models"]["ConvNet"]
        row = {"ipc": ipc, "iterations": sset.metadata.get("iterations"),
               "distill_seconds": sset.metadata.get("distill_seconds"),
               "median_iteration_seconds": sset.metadata.get("median_iteration_seconds"),
               "accuracy_mean": m["mean"], "accuracy_std": m["std"], "runs": m["runs"],
               "eval_epochs": args.epochs, "eval_train_seconds_mean": m.get("train_seconds_mean"),
               "paper": PAPER.get(args.method, {}).get(ipc), "run_dir": str(run_dir),
               "config": sset.metadata.get("distill")}
        res["rows"].append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "config"}), flush=True)
        write(args.out, res)


# --- 2. speed ----------------------------------------------------------------------------

def reference_style_iteration(train, by_class, images, opt, ipc: int, n_real: int, generator,
                              dsa_config) -> float:
    """One DM iteration structured like the public reference code: a Python loop over the
    classes, eager fp32 with the default (oneDNN) convolutions, one real and one synthetic
    forward per class, the real one with frozen weights and detached. Our own code, written
    to time that structure on this machine; it is not the reference implementation."""
    info = train.info
    net = build_model("ConvNet", info.channels, info.num_classes, info.size, generator=generator)
    net.train()
    for p in net.parameters():
        p.requires_grad_(False)
    loss = torch.zeros(())
    for c in range(info.num_classes):
        ix = by_class[c][torch.randperm(len(by_class[c]), generator=generator)[:n_real]]
        real = normalize(train.images[ix], info.mean, info.std)
        params = augment.sample(dsa_config, 1, max(n_real, ipc), tuple(info.size), generator=generator,
                                device=CPU)
        real = augment.apply(real, params, 1, dsa_config)
        syn = augment.apply(images[c * ipc:(c + 1) * ipc], params, 1, dsa_config)
        out_real = net.embed(real).detach()
        out_syn = net.embed(syn)
        loss = loss + ((out_real.mean(0) - out_syn.mean(0)) ** 2).sum()
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss.detach())


def time_reference_style(train, ipc: int, n_real: int, iterations: int) -> list[float]:
    g = torch.Generator().manual_seed(0)
    by_class = train.indices_by_class()  # once, as the reference code builds indices_class once
    idx = torch.cat([ix[:ipc] for ix in by_class])
    images = train.normalized(idx).requires_grad_(True)
    opt = torch.optim.SGD([images], lr=1.0, momentum=0.5)
    dsa = MatchConfig().dsa
    out = []
    for _ in range(iterations):
        t = time.perf_counter()
        reference_style_iteration(train, by_class, images, opt, ipc, n_real, g, dsa)
        out.append(time.perf_counter() - t)
    return out


def time_ours(args, train, ipc: int, iterations: int, **over) -> list[float]:
    cfg = distill_config(args, ipc, iterations=iterations, checkpoint_every=0, **over)
    out = match_loop(METHODS.get(args.method), train, cfg, device=args.device,
                     generator=torch.Generator().manual_seed(0), log=lambda m: None, progress=False)
    return out.metadata["iteration_seconds"]


def part_speed(args) -> None:
    train = load_dataset(DataConfig(name="mnist"), "train")
    res = base_record(args)
    n_real = args.batch_real
    variants = [("reference-style per-class loop, eager fp32", None),
                ("ours, eager fp32", dict(compile=False)),
                ("ours, --compile fp32", dict(compile=True)),
                ("ours, eager bf16 autocast", dict(compile=False, precision="bf16"))]
    for ipc in args.ipc:
        for name, over in variants:
            if "bf16" in name and ipc not in args.bf16_ipc:
                continue
            n = args.bf16_iterations if "bf16" in name else args.speed_iterations
            if over is None:
                secs = time_reference_style(train, ipc, n_real, n + 1)
            else:
                secs = time_ours(args, train, ipc, n + 1, batch_real=n_real, **over)
            steady = secs[1:]  # the first iteration pays compilation / allocation
            s_it = statistics.median(steady)
            row = {"ipc": ipc, "variant": name, "batch_real": n_real, "s_per_iteration": s_it,
                   "iteration_seconds": steady, "real_images_per_s": 10 * n_real / s_it,
                   "first_iteration_s": secs[0]}
            res["rows"].append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "iteration_seconds"}), flush=True)
            write(args.out, res)
    ref = {r["ipc"]: r["s_per_iteration"] for r in res["rows"] if r["variant"].startswith("reference")}
    for r in res["rows"]:
        r["speedup_vs_reference_style"] = ref[r["ipc"]] / r["s_per_iteration"] if r["ipc"] in ref else None
    write(args.out, res)


# --- 3. cost -----------------------------------------------------------------------------

def part_cost(args) -> None:
    train = load_dataset(DataConfig(name="mnist"), "train")
    res = base_record(args)
    method = METHODS.get(args.method)
    for ipc in args.ipc:
        cfg = distill_config(args, ipc, iterations=1, checkpoint_every=0, compile=False,
                             batch_real=args.batch_real)
        flops = count_flops(lambda: match_loop(method, train, cfg, device=args.device,
                                               generator=torch.Generator().manual_seed(0),
                                               log=lambda m: None, progress=False))
        # Peak memory of a separate process running 3 compiled iterations (resident set).
        peak = subprocess.run([sys.executable, __file__, "peakmem", "--method", args.method,
                               "--ipc", str(ipc), "--batch-real", str(args.batch_real)]
                              + sum((["--match", m] for m in args.match), []),
                              capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        row = {"ipc": ipc, "batch_real": cfg.engine.batch_real, "flops_per_iteration": flops,
               "gflops_per_iteration": flops / 1e9,
               "tflops_per_run": {str(n): flops * n / 1e12 for n in args.run_iterations},
               **json.loads(peak)}
        res["rows"].append(row)
        print(json.dumps(row), flush=True)
        write(args.out, res)


def part_peakmem(args) -> None:
    train = load_dataset(DataConfig(name="mnist"), "train")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cfg = distill_config(args, args.ipc[0], iterations=3, checkpoint_every=0, batch_real=args.batch_real)
    match_loop(METHODS.get(args.method), train, cfg, device=args.device, generator=torch.Generator().manual_seed(0),
               log=lambda m: None, progress=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_rss_mib": peak / 1024, "rss_after_data_load_mib": before / 1024,
                      "compile": cfg.engine.compile}))


# --- 4. time to accuracy -----------------------------------------------------------------

def part_tta(args) -> None:
    root = Path(args.root)
    marks = sorted(args.marks)
    test = load_dataset(DataConfig(name="mnist"), "test")
    res = base_record(args)
    cfg = distill_config(args, 10, iterations=args.max_iterations)
    snap_dirs = [root / f"t{m:.0f}s" for m in marks]
    if not all((d / "synthetic.json").exists() for d in snap_dirs):
        t0 = time.perf_counter()  # the clock includes loading the data and compiling
        train = load_dataset(DataConfig(name="mnist"), "train")
        pending = list(zip(marks, snap_dirs))

        def on_step(done, images, seconds, end=False):
            # Wall-clock from the start of distill (initialisation included).
            elapsed = time.perf_counter() - t0
            while pending and (end or elapsed >= pending[0][0]):
                mark, d = pending.pop(0)
                SyntheticSet(images=images.cpu().clone(), labels=labels, info=train.info,
                             factor=cfg.engine.factor,
                             metadata={"method": args.method, "ipc": 10, "iterations": done,
                                       "distill_seconds": elapsed, "mark_s": mark,
                                       "distill": cfg.to_dict()}).save(d)
                print(json.dumps({"snapshot": str(d), "iterations": done, "seconds": elapsed}), flush=True)

        labels = torch.arange(10).repeat_interleave(10)
        out = match_loop(METHODS.get(args.method), train, cfg, device=args.device,
                         generator=torch.Generator().manual_seed(args.seed), log=print, progress=False,
                         run_dir=root / "run", deadline=t0 + marks[-1], on_step=on_step,
                         data=DataConfig(name="mnist"))
        # A run that ends (--max-iterations, e.g. a finished cosine schedule) before a mark:
        # its final set is the set at that mark, made at the run's end.
        on_step(out.metadata["iterations"], out.images, None, end=True)
    runs = args.mark_runs or [args.runs] * len(marks)
    # The last snapshot first: it is the one the time-to-accuracy claim rests on.
    for d, r in reversed(list(zip(snap_dirs, runs))):
        if r == 0 or not (d / "synthetic.json").exists():
            continue
        sset = SyntheticSet.load(d)
        ecfg = dataclasses.replace(eval_config(args), runs=r)
        rep = evaluate(*sset.decoded(), test, ecfg, device=args.device, out_dir=d,
                       progress=False, workers=args.workers)
        m = rep["models"]["ConvNet"]
        row = {"mark_s": sset.metadata["mark_s"], "distill_seconds": sset.metadata["distill_seconds"],
               "iterations": sset.metadata["iterations"], "accuracy_mean": m["mean"],
               "accuracy_std": m["std"], "runs": m["runs"], "eval_epochs": args.epochs,
               "config": cfg.to_dict()}
        res["rows"].append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "config"}), flush=True)
        write(args.out, res)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("part", choices=["accuracy", "speed", "cost", "tta", "peakmem"])
    ap.add_argument("--out")
    ap.add_argument("--root", default="runs/dm_mnist")
    ap.add_argument("--method", default="dm")
    ap.add_argument("--ipc", type=int, nargs="+", default=[1, 10, 50])
    ap.add_argument("--iterations", nargs="+", default=["1:300", "10:300", "50:300"],
                    help="accuracy: IPC:ITERATIONS pairs")
    ap.add_argument("--match", action="append", default=[], help="MatchConfig key=value")
    ap.add_argument("--features", default="trained", help="coreset features for init=herding")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--batch-real", type=int, default=256)
    ap.add_argument("--speed-iterations", type=int, default=5)
    ap.add_argument("--bf16-ipc", type=int, nargs="*", default=[10])
    ap.add_argument("--bf16-iterations", type=int, default=1)
    ap.add_argument("--run-iterations", type=int, nargs="+", default=[20000])
    ap.add_argument("--marks", type=float, nargs="+", default=[300, 600, 840])
    ap.add_argument("--max-iterations", type=int, default=100000)
    ap.add_argument("--device", default="cpu", help="cpu | cuda (accuracy and tta parts)")
    ap.add_argument("--mark-runs", type=int, nargs="*", default=None,
                    help="tta: evaluation runs per mark (default --runs each)")
    args = ap.parse_args()
    if args.part != "peakmem" and not args.out:
        ap.error("--out is required")
    args.device = torch.device(args.device)
    {"accuracy": part_accuracy, "speed": part_speed, "cost": part_cost, "tta": part_tta,
     "peakmem": part_peakmem}[args.part](args)


if __name__ == "__main__":
    main()
