"""Seconds per matching iteration with and without the network pool (``--net-pool``), DM,
MNIST, IPC 10, real batch 64, ``--compile`` (so the pool's training step is compiled too);
median of the iterations after the first few (compilation). Each variant in its own process.

  python benchmarks/netpool_speed.py --out benchmarks/results/netpool_speed_cpu.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from child import run_child
import sys as _hs; _hs.path.insert(0, __import__('os').path.dirname(__file__))  # noqa: E702
from header import header  # noqa: E402

VARIANTS = {"fresh": {}, "pool10-b256": {"net_pool": 10, "net_train_batch": 256},
            "pool10-b64": {"net_pool": 10, "net_train_batch": 64}}


def measure(name: str, iterations: int) -> dict:
    import torch

    import sys as _sys; _sys.path.insert(0, __import__('os').path.dirname(__file__))  # legacy_api
    from legacy_api import DistillConfig, MatchConfig, machine, match_loop
    from synthset.config import DataConfig
    from synthset.data import load_dataset

    from synthset.methods import METHODS

    train = load_dataset(DataConfig(name="mnist"), "train")
    cfg = DistillConfig(method="dm", ipc=10, match=MatchConfig(
        iterations=iterations, batch_real=64, compile=True, checkpoint_every=0, **VARIANTS[name]))
    out = match_loop(METHODS.get("dm"), train, cfg, device=torch.device("cpu"),
                     generator=torch.Generator().manual_seed(0), log=lambda m: None, progress=False)
    its = out.metadata["iteration_seconds"][5:]
    return {"variant": name, "options": VARIANTS[name], "median_iteration_seconds": sorted(its)[len(its) // 2],
            "iterations_timed": len(its), "gflop_per_iteration": out.metadata["flops_per_iteration"] / 1e9}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--iterations", type=int, default=20)
    args = ap.parse_args()

    code = ("import json, sys; sys.path.insert(0, %r); import netpool_speed as m; "
            "name, its = json.loads(sys.argv[1]); print(json.dumps(m.measure(name, its)))"
            % str(Path(__file__).parent))
    rows = [run_child(code, [name, args.iterations]) for name in VARIANTS]
    from legacy_api import machine
    json.dump({**header(sys.argv), "rows": rows}, open(args.out, "w"), indent=2)
    for r in rows:
        print(r)


if __name__ == "__main__":
    main()
