"""Where does a run cut on 2 torchrun ranks and resumed in 1 process leave the
uninterrupted run? For each length k = 1..N iterations it makes three DM sets from one tiny
MNIST and prints the largest pixel difference to the 1-process run of k iterations:

  - ``2 ranks``: the run on 2 ranks throughout (sharding alone);
  - ``cut+resume``: stopped after its first iteration on 2 ranks, resumed to k in 1 process.

The first k whose difference leaves rounding (above 1e-6) is the diverging iteration; the
two columns say whether sharding or the resume causes it.

    python benchmarks/resume_divergence.py --iterations 6 --out benchmarks/results/resume_divergence.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from synthset.data import DATASETS
from synthset.provenance import machine
from synthset.synthetic import SyntheticSet


def run(root: Path, out: Path, k: int, *extra: str, ranks: int = 1) -> None:
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                 f"--nproc-per-node={ranks}", "-m", "synthset"] if ranks > 1
                else [sys.executable, "-m", "synthset"])
    argv = ["distill", "--method", "dm", "--ipc", "2", "--iterations", str(k), "--batch-real", "16",
            "--precision", "fp32", "--data-root", str(root), "--no-verify", "--device", "cpu",
            "--checkpoint-every", "1", "--out", str(out), *extra]
    # one thread per process, as torchrun gives each rank: the kernels match, the sharding differs
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([*launcher, *argv], env=env, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"{' '.join(argv)} failed:\n{res.stderr[-3000:]}")


def gap(a: Path, b: Path) -> float:
    return float((SyntheticSet.load(a).images - SyntheticSet.load(b).images).abs().max())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=6)
    ap.add_argument("--out", default=None, help="JSON file for the table")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        root = tmp / "data"
        DATASETS.get("mnist").fake(root)
        for k in range(1, args.iterations + 1):
            run(root, tmp / f"one{k}", k)
            run(root, tmp / f"two{k}", k, ranks=2)
            run(root, tmp / f"cut{k}", k, "--max-time", "0.001s", ranks=2)
            run(root, tmp / f"cut{k}", k, "--resume")
            rows.append({"iterations": k, "two_ranks": gap(tmp / f"one{k}", tmp / f"two{k}"),
                         "cut_resume": gap(tmp / f"one{k}", tmp / f"cut{k}")})
            print(json.dumps(rows[-1]), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"command": " ".join(["python", *sys.argv]),
                                              "machine": machine(), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
