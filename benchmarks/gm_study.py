"""Gradient matching (DC, DSA) on MNIST at IPC 1 and 10 and on MHIST 64 px at IPC 10, at
stated time budgets, evaluated with the field's protocol; DM's time per iteration at the
same settings for comparison. Run directories go under benchmarks/results/gm_study/, a
summary to benchmarks/results/gm_study/summary.json (rewritten after every step, so a
stopped study keeps what it finished; rerunning resumes: finished sets and runs are kept).

    python benchmarks/gm_study.py [--budget 20m] [--mhist-budget 15m] [--only NAME ...]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from synthset.config import DataConfig, DistillConfig, EvalConfig, TrainConfig
from synthset.data import DATASETS, load_dataset
from synthset.distill import distill
from synthset.evaluate import evaluate
from synthset.synthetic import SyntheticSet

from header import header  # the script's own folder is on sys.path when run as a script

OUT = Path(__file__).parent / "results" / "gm_study"


def studies(budget: str, mhist_budget: str) -> list[dict]:
    mnist = DataConfig(name="mnist")
    mhist = DataConfig(name="mhist", image_size=64)
    out = []
    for ipc in (1, 10):
        for method in ("dc", "dsa"):
            out.append(dict(name=f"mnist-{method}-ipc{ipc}", data=mnist,
                            distill=dict(method=method, ipc=ipc, engine=dict(max_time=budget)),
                            eval=dict(models=("ConvNet",), runs=5, epochs=1000)))
    out.append(dict(name="mhist64-dc-ipc10", data=mhist,
                    distill=dict(method="dc", ipc=10, engine=dict(max_time=mhist_budget,
                                                                  batch_real=64, model="ConvNetD4")),
                    eval=dict(models=("ConvNetD4",), runs=3, epochs=300)))
    return out


def dm_iteration_seconds(ipc: int, iterations: int = 4) -> float:
    """DM at its official settings (real batch 256, eager fp32) on MNIST, median s/it."""
    s = distill(DataConfig(name="mnist"),
                DistillConfig.from_dict(dict(method="dm", ipc=ipc, engine=dict(iterations=iterations))),
                progress=False, log=lambda m: None)
    return s.metadata["median_iteration_seconds"]


def run_one(st: dict, summary: dict) -> None:
    run_dir = OUT / st["name"]
    data = st["data"]
    if not (run_dir / "synthetic.safetensors").exists():
        cfg = DistillConfig.from_dict(st["distill"])
        distill(data, cfg, out_dir=run_dir, device=torch.device("cpu"),
                resume=(run_dir / "checkpoint.safetensors").exists(), progress=False)
    sset = SyntheticSet.load(run_dir)
    m = sset.metadata
    e = st["eval"]
    test = load_dataset(data, "test")
    tcfg = DATASETS.get(data.name).train_config(TrainConfig(epochs=e["epochs"], compile=True))
    rep = evaluate(*sset.decoded(), test, EvalConfig(models=e["models"], runs=e["runs"], train=tcfg),
                   device=torch.device("cpu"), out_dir=run_dir, progress=False)
    res = rep["models"][e["models"][0]]
    summary["sets"][st["name"]] = {
        "distill": st["distill"], "iterations": m["iterations"], "stopped_by": m.get("stopped_by"),
        "distill_seconds": m["distill_seconds"], "median_iteration_seconds": m["median_iteration_seconds"],
        "flops_per_iteration": m["flops_per_iteration"], "distill_flops": m["distill_flops"],
        "eval": {"model": e["models"][0], "runs": e["runs"], "epochs": e["epochs"],
                 "accuracy": res["mean"], "std": res["std"], "per_run": res["runs"],
                 "balanced": res["balanced_accuracy"]["mean"],
                 "auc": res.get("auc", {}).get("mean")}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", default="20m", help="distillation budget per MNIST set")
    ap.add_argument("--mhist-budget", default="15m")
    ap.add_argument("--only", nargs="*", default=None)
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "summary.json"
    summary = json.loads(path.read_text()) if path.exists() else {"sets": {}}
    summary["header"] = header(sys.argv)
    if "dm_iteration_seconds" not in summary:
        summary["dm_iteration_seconds"] = {str(k): dm_iteration_seconds(k) for k in (1, 10)}
        path.write_text(json.dumps(summary, indent=2))
    for st in studies(args.budget, args.mhist_budget):
        if args.only and st["name"] not in args.only:
            continue
        t = time.time()
        run_one(st, summary)
        print(f"{st['name']}: {summary['sets'][st['name']]['eval']} ({time.time() - t:.0f} s)",
              flush=True)
        path.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
