"""Quick comparison of DM / DataDAM variants at IPC 10 on MNIST at an equal wall-clock
budget (``--budget`` seconds) or an equal iteration budget (``--iterations``), each set then
evaluated with a reduced protocol (``--epochs`` epochs, ``--runs`` runs, compiled) - a proxy
for ranking options before the full protocol. Appends one JSON line per variant to ``--out``.

  python benchmarks/dm_proxy.py --out benchmarks/results/dm_proxy_cpu.jsonl --budget 250 \
      --variant bs64:batch_real=64 --variant herd:batch_real=64,init=herding,features=pixels
  python benchmarks/dm_proxy.py --method datadam --iterations 200 --out ... \
      --variant p1:p=1 --variant p4:p=4 --variant no-att:attention=false

Variant keys: MatchConfig fields, DataDAMConfig fields (p, lam, layers as 0+1, attention,
embedding) and ``features`` (coreset space for init=herding).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch

import dataclasses

import sys as _sys; _sys.path.insert(0, __import__('os').path.dirname(__file__))  # legacy_api
from legacy_api import DataDAMConfig, DistillConfig, MatchConfig, for_dataset, machine, match_loop
from synthset.config import CoresetConfig, DataConfig, EvalConfig, TrainConfig
from synthset.data import load_dataset

from synthset.evaluate import evaluate
from synthset.formation import decode
from synthset.methods import METHODS

from synthset.methods.datadam import DataDAMOptions  # noqa: E402
from synthset.methods.matching import MatchingOptions  # noqa: E402
import sys as _hs; _hs.path.insert(0, __import__('os').path.dirname(__file__))  # noqa: E702
from header import header  # noqa: E402

# DataDAM's own keys (the matching loop's options stay with the engine's in the old flat form)
DAM_KEYS = ({f.name for f in dataclasses.fields(DataDAMOptions)}
            - {f.name for f in dataclasses.fields(MatchingOptions)})


def parse(spec: str) -> tuple[str, dict]:
    name, _, opts = spec.partition(":")
    kw = {}
    for item in filter(None, opts.split(",")):
        k, v = item.split("=")
        if k in ("init", "features", "model", "lr_schedule"):
            kw[k] = v
        elif v in ("true", "false"):
            kw[k] = v == "true"
        elif k == "layers":
            kw[k] = tuple(int(i) for i in v.split("+"))
        else:
            kw[k] = float(v) if "." in v else int(v)
    return name, kw


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--budget", type=float, default=None, help="distillation seconds per variant")
    ap.add_argument("--iterations", type=int, default=None, help="or: iterations per variant")
    ap.add_argument("--method", default="dm")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--ipc", type=int, default=10)
    ap.add_argument("--workers", type=int, default=1, help="evaluation runs trained at once (CPU)")
    ap.add_argument("--variant", action="append", required=True,
                    help="name:key=value,... (MatchConfig fields; features=... for herding init)")
    args = ap.parse_args()
    train = load_dataset(DataConfig(name="mnist"), "train")
    test = load_dataset(DataConfig(name="mnist"), "test")
    device = torch.device("cpu")
    for spec in args.variant:
        name, kw = parse(spec)
        features = kw.pop("features", "trained")
        dam = {k: kw.pop(k) for k in list(kw) if k in DAM_KEYS}
        mc = MatchConfig(iterations=args.iterations or 100000, checkpoint_every=0, compile=True, **kw)
        cfg = DistillConfig(method=args.method, ipc=args.ipc, match=mc, datadam=DataDAMConfig(**dam),
                            coreset=CoresetConfig(features=features))
        t0 = time.perf_counter()
        out = match_loop(METHODS.get(args.method), train, cfg, device=device,
                         generator=torch.Generator().manual_seed(0), log=lambda m: None, progress=False,
                         deadline=t0 + args.budget if args.budget else None)
        seconds = time.perf_counter() - t0
        tcfg = for_dataset(TrainConfig(epochs=args.epochs, compile=True), "mnist")
        train_set = decode(out.images, out.labels, out.metadata.get("factor", 1))  # what models train on
        rep = evaluate(*train_set, test, EvalConfig(models=("ConvNet",), runs=args.runs, train=tcfg),
                       device=device, progress=False, log=lambda m: None, workers=args.workers)
        row = {"variant": name, "method": args.method, "options": {**kw, **dam}, "features": features,
               "distill_seconds": seconds, "median_iteration_seconds":
                   sorted(out.metadata["iteration_seconds"])[len(out.metadata["iteration_seconds"]) // 2],
               "iterations": len(out.metadata["iteration_seconds"]),
               "final_loss": out.metadata["final_loss"],
               "accuracy": rep["models"]["ConvNet"]["mean"], "std": rep["models"]["ConvNet"]["std"],
               "eval_runs": args.runs, "eval_epochs": args.epochs,
               "runs": rep["models"]["ConvNet"]["runs"],
               **header(sys.argv)}
        print(json.dumps(row), flush=True)
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
