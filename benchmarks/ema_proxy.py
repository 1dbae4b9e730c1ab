"""Last iterate vs exponential moving averages of the synthetic images (``MatchConfig.ema``),
at a constant or cosine image lr: one DM IPC 10 run on MNIST of ``N`` iterations (real batch
64, pixel-herding start, compiled), the averages kept beside it from the same trajectory, each
set evaluated with a reduced protocol (ConvNet, 300 epochs, 2 runs, the same seeds for every
set, so the runs pair up). Appends one JSON line per set to ``OUT``.

  python benchmarks/ema_proxy.py 220 constant 1.0 benchmarks/results/ema_proxy_cpu.jsonl 0.9,0.97,0.99
  python benchmarks/ema_proxy.py 220 cosine 1.0 benchmarks/results/ema_proxy_cpu.jsonl 0.9
"""
import json
import sys
import time

import torch

import sys as _sys; _sys.path.insert(0, __import__('os').path.dirname(__file__))  # legacy_api
from legacy_api import DistillConfig, MatchConfig, ema_update, for_dataset, machine, match_loop  # noqa: F401
from header import header  # noqa: E402
from synthset.config import CoresetConfig, DataConfig, EvalConfig, TrainConfig
from synthset.data import load_dataset

from synthset.evaluate import evaluate
from synthset.methods import METHODS


def main():
    n, schedule, lr, out = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), sys.argv[4]
    decays = [float(x) for x in sys.argv[5].split(",") if x] if len(sys.argv) > 5 else []
    train = load_dataset(DataConfig(name="mnist"), "train")
    test = load_dataset(DataConfig(name="mnist"), "test")
    cfg = DistillConfig(method="dm", ipc=10, coreset=CoresetConfig(features="pixels"),
                        match=MatchConfig(iterations=n, checkpoint_every=0, compile=True, batch_real=64,
                                          init="herding", lr_img=lr, lr_schedule=schedule))
    averages = {d: None for d in decays}

    def on_step(done, images, seconds):
        # The average starts at the first iterate here (the library's ``ema`` starts at the
        # initial images); after 220 iterations the difference weighs at most 0.99^220 = 0.11.
        for d in decays:
            averages[d] = images.clone() if averages[d] is None else ema_update(averages[d], images, d)

    t0 = time.perf_counter()
    res = match_loop(METHODS.get("dm"), train, cfg, device=torch.device("cpu"),
                     generator=torch.Generator().manual_seed(0), log=lambda m: None, progress=False,
                     on_step=on_step)
    seconds = time.perf_counter() - t0
    sets = {"last": res.images, **{f"ema{d}": averages[d] for d in decays}}
    for name, images in sets.items():
        tcfg = for_dataset(TrainConfig(epochs=300, compile=True), "mnist")
        rep = evaluate(images, res.labels, test, EvalConfig(models=("ConvNet",), runs=2, train=tcfg),
                       device=torch.device("cpu"), progress=False, log=lambda m: None, workers=2)
        m = rep["models"]["ConvNet"]
        row = {"iterations": n, "lr_schedule": schedule, "lr_img": lr, "set": name,
               "distill_seconds": seconds, "accuracy": m["mean"], "std": m["std"], "runs": m["runs"],
               **header(sys.argv)}
        print(json.dumps(row), flush=True)
        with open(out, "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":  # evaluate(workers=2) spawns processes that import this file
    main()
