"""What makes MHIST at 64 / 128 / 224 px practical on a CPU: one measurement per
lever, written to JSON as it comes.

- load: decoding all 3,152 images from the image files vs reading the decoded-tensor cache.
- iteration: seconds per DM / DataDAM iteration at IPC 10 with the resolution's ConvNet
  (64: ConvNetD4, 128: ConvNetD5, 224: ConvNetD7), per variant: eager fp32, --compile,
  channels-last, bf16 autocast, and a smaller real batch; FLOPs per iteration (meta-tensor
  count) beside them.

  python benchmarks/mhist_speed.py --out benchmarks/results/mhist_speed_cpu.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import sys as _sys; _sys.path.insert(0, __import__('os').path.dirname(__file__))  # legacy_api
from legacy_api import DistillConfig, MatchConfig, iteration_flops, machine, match_loop
from synthset.config import DataConfig
from synthset.data import load_dataset, mhist
from synthset.device import peak_memory_mib


from synthset.methods import METHODS
import sys as _hs; _hs.path.insert(0, __import__('os').path.dirname(__file__))  # noqa: E702
from header import header  # noqa: E402

MODELS = {64: "ConvNetD4", 128: "ConvNetD5", 224: "ConvNetD7"}
VARIANTS = {  # name -> MatchConfig overrides (real batch 64 per class unless stated)
    "eager fp32": dict(),
    "compile fp32": dict(compile=True),
    "eager fp32 channels-last": dict(channels_last=True),
    "eager bf16 autocast": dict(precision="bf16"),
    "compile fp32, real batch 16": dict(compile=True, batch_real=16),
}


def write(path: str, obj: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(obj, indent=2))


def part_load(args, res: dict) -> None:
    root = Path(args.data_root or os.environ.get("SYNTHSET_DATA", "."))
    saved = os.environ.get("SYNTHSET_CACHE")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["SYNTHSET_CACHE"] = cache  # an empty cache: the first load decodes
        for size in args.load_sizes:
            t = time.perf_counter()
            mhist.load_all(root, size)  # decodes the files and writes the cache
            decode = time.perf_counter() - t
            t = time.perf_counter()
            _, images = mhist.load_all(root, size)
            cached = time.perf_counter() - t
            row = {"part": "load", "size": size, "decode_s": decode, "cached_load_s": cached,
                   "speedup": decode / cached, "cache_mib": images.numel() / 2 ** 20}
            res["rows"].append(row)
            print(json.dumps(row), flush=True)
            write(args.out, res)
    if saved is None:
        os.environ.pop("SYNTHSET_CACHE")
    else:
        os.environ["SYNTHSET_CACHE"] = saved


def part_iteration(args, res: dict) -> None:
    for size in args.sizes:
        model = MODELS[size]
        data = DataConfig(name="mhist", image_size=size)
        train = load_dataset(data, "train")
        for method in args.methods:
            for name in args.variants:
                over = dict(batch_real=64, model=model, checkpoint_every=0) | VARIANTS[name]
                n = args.bf16_iterations if "bf16" in name else args.iterations
                cfg = DistillConfig(method=method, ipc=args.ipc, seed=0,
                                    match=MatchConfig(iterations=n + 1, **over))
                out = match_loop(METHODS.get(method), train, cfg, device=torch.device("cpu"),
                                 generator=torch.Generator().manual_seed(0), log=lambda m: None,
                                 progress=False)
                secs = out.metadata["iteration_seconds"]
                s_it = statistics.median(secs[1:])  # the first pays compilation / allocation
                flops = iteration_flops(METHODS.get(method), cfg, train, over["batch_real"])
                row = {"part": "iteration", "size": size, "model": model, "method": method,
                       "ipc": args.ipc, "variant": name, "batch_real": over["batch_real"],
                       "s_per_iteration": s_it, "first_iteration_s": secs[0],
                       "iteration_seconds": secs[1:], "gflop_per_iteration": flops / 1e9,
                       "gflop_per_s": flops / 1e9 / s_it, "process_peak_rss_mib_so_far": peak_memory_mib(torch.device("cpu"))}
                res["rows"].append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "iteration_seconds"}), flush=True)
                write(args.out, res)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--parts", nargs="+", default=["load", "iteration"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[64, 128, 224], help="iteration part")
    ap.add_argument("--load-sizes", nargs="+", type=int, default=[64, 128, 224])
    ap.add_argument("--methods", nargs="+", default=["dm", "datadam"])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--ipc", type=int, default=10)
    ap.add_argument("--iterations", type=int, default=3, help="timed iterations per variant")
    ap.add_argument("--bf16-iterations", type=int, default=1)
    ap.add_argument("--data-root")
    args = ap.parse_args()
    for v in args.variants:
        if v not in VARIANTS:
            ap.error(f"unknown variant {v!r}; choose from {list(VARIANTS)}")
    res = {**header(sys.argv),
           "torch": torch.__version__, "rows": []}
    if "load" in args.parts:
        part_load(args, res)
    if "iteration" in args.parts:
        part_iteration(args, res)


if __name__ == "__main__":
    main()
