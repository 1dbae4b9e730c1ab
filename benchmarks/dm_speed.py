"""Seconds per DM iteration (official settings: real batch 256 per class, ConvNet, DSA)
at IPC 10 and 50, eager vs ``--compile``, on MNIST; writes JSON.

  python benchmarks/dm_speed.py --out benchmarks/results/dm_speed_cpu.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from synthset.config import DataConfig, DistillConfig, MatchConfig
from synthset.data import load_dataset
from synthset.device import resolve_device
from synthset.distill import match_loop
from synthset.evaluate import machine
from synthset.flops import count_flops
from synthset.methods.dm import DM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--iterations", type=int, default=8)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    device = resolve_device(args.device)
    train = load_dataset(DataConfig(name="mnist"), "train")
    res = {"command": " ".join(sys.argv), "machine": machine(), "device": str(device), "rows": []}
    for ipc in (10, 50):
        for compile_ in (False, True):
            def run(n):
                cfg = DistillConfig(method="dm", ipc=ipc, match=MatchConfig(
                    iterations=n, checkpoint_every=0, compile=compile_))
                t0 = time.perf_counter()
                match_loop(DM(), train, cfg, device=device, generator=torch.Generator().manual_seed(0),
                           log=lambda m: None, progress=False)
                return time.perf_counter() - t0
            warm = run(2)  # includes compilation
            total = run(args.iterations + 2)
            s_it = (total - warm) / args.iterations  # subtract the set-up + first two iterations
            row = {"ipc": ipc, "compile": compile_, "s_per_iteration": s_it,
                   "real_images_per_s": 10 * 256 / s_it, "warmup_s": warm}
            res["rows"].append(row)
            print(row, flush=True)
            with open(args.out, "w") as f:
                json.dump(res, f, indent=2)
    # FLOPs of one iteration (eager, counted): real forward + synthetic forward/backward.
    cfg = DistillConfig(method="dm", ipc=10, match=MatchConfig(iterations=1, checkpoint_every=0))
    res["flops_per_iteration_ipc10"] = count_flops(lambda: match_loop(
        DM(), train, cfg, device=device, generator=torch.Generator().manual_seed(0), log=lambda m: None,
        progress=False))
    with open(args.out, "w") as f:
        json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
