"""Wall-clock of the evaluation protocol (ConvNet, MNIST, IPC 10, DSA) per variant.

Times N training steps of each variant (after warm-up), extrapolates to 1000 epochs,
then runs one full 1000-epoch evaluation with the fastest fp32 variant and records its
accuracy (compare with the fp32 protocol's runs in mnist_coresets_*.json).

  python benchmarks/eval_speed.py --out benchmarks/results/eval_speed_cpu.json
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import sys as _sys; _sys.path.insert(0, __import__('os').path.dirname(__file__))  # legacy_api
from legacy_api import DistillConfig, for_dataset, machine
from synthset import augment
from synthset.config import DataConfig, TrainConfig
from synthset.data import load_dataset
from synthset.device import resolve_device, synchronize
from synthset.distill import distill
from synthset.evaluate import evaluate_run
from synthset.models import build_model
import sys as _hs; _hs.path.insert(0, __import__('os').path.dirname(__file__))  # noqa: E702
from header import header  # noqa: E402

VARIANTS = {
    "fp32": {},
    "fp32+channels_last": {"channels_last": True},
    "fp32+compile": {"compile": True},
    "fp32+compile+channels_last": {"compile": True, "channels_last": True},
    "bf16-autocast": {"precision": "bf16"},
}


def time_steps(cfg: TrainConfig, x, y, steps: int, device) -> float:
    net = build_model("ConvNet", 1, 10, (28, 28), generator=torch.Generator().manual_seed(0)).to(device)
    if cfg.channels_last:
        net = net.to(memory_format=torch.channels_last)
    fwd = torch.compile(net) if cfg.compile else net
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    g = torch.Generator().manual_seed(0)

    def step():
        p = augment.sample(cfg.dsa, 1, x.shape[0], (28, 28), generator=g, device=device)
        xx = augment.apply(x, p, 1, cfg.dsa)
        if cfg.channels_last:
            xx = xx.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
            loss = F.cross_entropy(fwd(xx), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t0 = time.perf_counter()
    for _ in range(3):
        step()
    warm = time.perf_counter() - t0
    synchronize(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return (time.perf_counter() - t0) / steps, warm


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--full-run", action=argparse.BooleanOptionalAction, default=True)
    args = ap.parse_args()
    device = resolve_device(args.device)
    sset = distill(DataConfig(name="mnist"), DistillConfig(method="random", ipc=10, seed=0), log=lambda m: None)
    x, y = sset.images.to(device), sset.labels.to(device)
    res = {**header(sys.argv), "device": str(device), "variants": {}}
    out = Path(args.out)
    base = for_dataset(TrainConfig(), "mnist")
    for name, kw in VARIANTS.items():
        cfg = dataclasses.replace(base, **kw)
        steps = args.steps if cfg.precision == "fp32" else max(3, args.steps // 5)
        try:
            s, warm = time_steps(cfg, x, y, steps, device)
        except Exception as e:  # e.g. no C++ compiler for torch.compile
            res["variants"][name] = {"error": str(e)[:300]}
            continue
        res["variants"][name] = {"s_per_step": s, "warmup_s": warm, "steps_timed": steps,
                                 "projected_s_per_1000_epochs": s * 1000}
        print(f"{name:<28} {s * 1000:7.1f} ms/step -> {s * 1000:6.0f} s per 1000-epoch run "
              f"(warm-up {warm:.1f}s)", flush=True)
        out.write_text(json.dumps(res, indent=2))
    fp32 = {k: v for k, v in res["variants"].items() if "s_per_step" in v and "bf16" not in k}
    best = min(fp32, key=lambda k: fp32[k]["s_per_step"])
    res["fastest_fp32"] = best
    res["speedup_vs_fp32_eager"] = fp32["fp32"]["s_per_step"] / fp32[best]["s_per_step"]
    if args.full_run:
        test = load_dataset(DataConfig(name="mnist"), "test")
        cfg = dataclasses.replace(base, **VARIANTS[best])
        r = evaluate_run("ConvNet", sset.images, sset.labels, test, cfg, seed=0, run=0, device=device,
                         progress=False)
        res["full_run"] = {"variant": best, **dataclasses.asdict(r)}
        print(f"full run ({best}): {r.accuracy:.2f}% in {r.train_seconds:.0f}s training + "
              f"{r.test_seconds:.1f}s test", flush=True)
    out.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
