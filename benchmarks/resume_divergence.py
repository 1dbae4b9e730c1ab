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


def trace(root: Path, tmp: Path, iterations: int) -> list[dict]:
    """Resume the 1-process and the 2-rank checkpoints of iteration 1 in this process, one
    iteration at a time, recording every ReLU's input: the ReLUs whose sign differs between
    the two, per iteration, and how far from zero they were (batched passes only; the
    one-image shape probes are skipped)."""
    import shutil

    import torch

    from synthset.cli import main as synthset
    torch.set_num_threads(1)  # as the runs above
    for name, ranks in (("one", 1), ("two", 2)):
        run(root, tmp / f"t-{name}", iterations, "--max-time", "0.001s", ranks=ranks)
    out = []
    for k in range(2, iterations + 1):
        seen = {}
        for name in ("one", "two"):
            calls = []

            def pre(mod, inp):
                if isinstance(mod, torch.nn.ReLU) and inp[0].device.type != "meta" and len(inp[0]) > 1:
                    calls.append(inp[0].detach().clone())
            hook = torch.nn.modules.module.register_module_forward_pre_hook(pre)
            try:
                shutil.copytree(tmp / f"t-{name}", tmp / f"t-{name}-{k}")
                argv = ["distill", "--method", "dm", "--ipc", "2", "--iterations", str(k),
                        "--batch-real", "16", "--precision", "fp32", "--data-root", str(root),
                        "--no-verify", "--device", "cpu", "--checkpoint-every", "1",
                        "--out", str(tmp / f"t-{name}-{k}"), "--resume"]
                assert synthset(argv) == 0
            finally:
                hook.remove()
            seen[name] = calls[-len(calls) // (k - 1):]  # the last iteration's passes
        flips = [{"pass": i, "shape": list(a.shape), "sign_flips": int(((a > 0) != (b > 0)).sum()),
                  "largest_abs_input_flipped": float(a[(a > 0) != (b > 0)].abs().max())}
                 for i, (a, b) in enumerate(zip(seen["one"], seen["two"])) if ((a > 0) != (b > 0)).any()]
        out.append({"iteration": k, "relu_flips": flips,
                    "gap_after": gap(tmp / f"t-one-{k}", tmp / f"t-two-{k}")})
        print(json.dumps(out[-1]), flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iterations", type=int, default=6)
    ap.add_argument("--out", default=None, help="JSON file for the table")
    ap.add_argument("--trace", action="store_true",
                    help="also find the ReLUs whose sign the 2-rank checkpoint flips")
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
        traced = trace(root, tmp, args.iterations) if args.trace else None
    if args.out:
        Path(args.out).write_text(json.dumps({"command": " ".join(["python", *sys.argv]),
                                              "machine": machine(), "rows": rows,
                                              **({"trace": traced} if traced else {})}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
