"""Scale-out on one machine, as ratios measured in one run: 1 process x T threads against
torchrun's N processes x T/N threads, for DM distillation and for an evaluation; writes JSON.

    python benchmarks/distributed_scaling.py --out benchmarks/results/distributed/scaling_cpu.json

dm: MNIST, IPC 10, real batch 256 per class, ConvNet, DSA, ``--compile``, precision auto,
``--iterations`` iterations; per-iteration median and the loop's seconds from the sets'
metadata, the all-reduces (count, bytes, seconds spent in them on rank 0) and the largest
difference between the two sets. eval: one random IPC 10 set, ``--runs`` runs x
``--epochs`` epochs (``--compile``), one process, torchrun, and ``--workers`` (local
processes), wall-clock of each and whether the per-run accuracies agree.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from header import header  # the script's own folder is on sys.path when run as a script

from synthset.synthetic import SyntheticSet  # noqa: E402


def run(argv: list[str], *, ranks: int, threads: int) -> float:
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                 f"--nproc-per-node={ranks}", "-m", "synthset"] if ranks > 1
                else [sys.executable, "-m", "synthset"])
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t = time.perf_counter()
    res = subprocess.run([*launcher, *argv], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if res.returncode:
        raise SystemExit(f"{' '.join(argv)} failed:\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}")
    return wall


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--parts", nargs="+", default=["dm", "eval"])
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv[1:])
    out = {"header": header(argv), "ranks": args.ranks, "threads": args.threads}
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="synthset-scaling-"))
    per_rank = max(1, args.threads // args.ranks)
    layouts = {"1 process": (1, args.threads), "torchrun": (args.ranks, per_rank)}
    try:
        if "dm" in args.parts:
            base = ["distill", "--method", "dm", "--ipc", "10", "--iterations", str(args.iterations),
                    "--batch-real", "256", "--compile", "--device", "cpu", "--checkpoint-every", "0"]
            res, sets = {}, {}
            for name, (ranks, threads) in layouts.items():
                d = tmp / f"dm-{ranks}"
                wall = run([*base, "--out", str(d)], ranks=ranks, threads=threads)
                s = SyntheticSet.load(d)
                sets[name] = s.images
                m = s.metadata
                res[name] = {"ranks": ranks, "threads_per_rank": threads, "wall_seconds": wall,
                             "loop_seconds": m["loop_seconds"],
                             "median_iteration_seconds": m["median_iteration_seconds"],
                             "precision": {k: v["precision"] for k, v in m["precision"].items()},
                             "communication": m.get("communication")}
                print(name, json.dumps(res[name]), flush=True)
            one, two = res["1 process"], res["torchrun"]
            res["speedup_per_iteration"] = one["median_iteration_seconds"] / two["median_iteration_seconds"]
            res["max_abs_set_difference"] = float((sets["1 process"] - sets["torchrun"]).abs().max())
            out["dm"] = res
            path.write_text(json.dumps(out, indent=2))
        if "eval" in args.parts:
            src = tmp / "random"
            run(["distill", "--method", "random", "--ipc", "10", "--out", str(src)], ranks=1, threads=args.threads)
            common = ["--runs", str(args.runs), "--epochs", str(args.epochs), "--compile", "--device", "cpu"]
            res = {}
            for name, (ranks, threads, extra) in {
                    "1 process": (1, args.threads, []),
                    "torchrun": (args.ranks, per_rank, []),
                    f"--workers {args.ranks}": (1, args.threads, ["--workers", str(args.ranks)])}.items():
                d = tmp / f"eval-{name.replace(' ', '_')}"
                shutil.copytree(src, d)
                wall = run(["evaluate", str(d), *common, *extra], ranks=ranks, threads=threads)
                m = json.loads((d / "eval.json").read_text())["models"]["ConvNet"]
                res[name] = {"ranks": ranks, "wall_seconds": wall, "runs": m["runs"],
                             "train_seconds": m["train_seconds"], "mean": m["mean"]}
                print(name, json.dumps(res[name]), flush=True)
            res["speedup_torchrun"] = res["1 process"]["wall_seconds"] / res["torchrun"]["wall_seconds"]
            res["speedup_workers"] = (res["1 process"]["wall_seconds"]
                                      / res[f"--workers {args.ranks}"]["wall_seconds"])
            res["torchrun_runs_equal_one_process"] = res["torchrun"]["runs"] == res["1 process"]["runs"]
            out["eval"] = res
            path.write_text(json.dumps(out, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv)
