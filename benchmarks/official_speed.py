"""synthset beside the official DatasetCondensation ``main_DM.py`` (Zhao & Bilen), timed in
the same run, alternating, on MNIST at the official DM settings (256 real images per class,
random real start, DSA, ConvNet).

    git clone https://github.com/VICO-UoE/DatasetCondensation /path/DatasetCondensation
    python benchmarks/official_speed.py --official /path/DatasetCondensation \
        --out benchmarks/results/official_speed/<cpu>.json

Nothing of the official code is kept here. It runs from a temporary copy of the checkout
with these changes, for torch 2.13 on a CPU without torchvision (each also recorded in the
JSON):
- ``benchmarks/official/torchvision`` stands in for torchvision's MNIST (read from the files
  on disk), ``ToTensor``/``Normalize`` and ``save_image`` (writes nothing);
- ``networks.py``: the six ``out = out.view(out.size(0), -1)`` become ``reshape`` (after DSA
  the feature map is not contiguous under torch 2.13, and ``view`` refuses it);
- ``--num_eval 0 --num_exp 1 --Iteration N``: no evaluation networks are trained and one
  experiment of N iterations runs (the distillation loop itself is untouched).
Its seconds per iteration are read from its own progress lines (one every 10 iterations),
timestamped as they arrive; the block ending at iteration 10 (first calls, warm-up) is
dropped and the median block / 10 is kept. synthset's are the median iteration its run
records. Each pair runs under glibc's default allocator (synthset with SYNTHSET_MALLOC=system)
and under synthset's setting (the official script through glibc's MALLOC_*_ environment
variables, which set the same two thresholds as ``synthset.device.reuse_freed_memory``).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from header import header

HERE = Path(__file__).resolve().parent
SYNTHSET_HEAP = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str((1 << 31) - 1)}
# (file, text, replacement, expected count): the only edits to the official code
PATCHES = [("networks.py", "out = out.view(out.size(0), -1)", "out = out.reshape(out.size(0), -1)", 6)]
CHANGES = ["torchvision replaced by benchmarks/official/torchvision (MNIST from disk, no image saving)",
           "networks.py: the six out = out.view(out.size(0), -1) -> reshape (non-contiguous "
           "feature map after DSA under torch 2.13)",
           "--num_eval 0 --num_exp 1 --Iteration N (no evaluation; one shortened experiment)"]


def patched_copy(checkout: Path, into: Path) -> Path:
    """A copy of the checkout with PATCHES applied (each must match as often as expected)."""
    dst = into / "DatasetCondensation"
    shutil.copytree(checkout, dst, ignore=shutil.ignore_patterns(".git"))
    for name, old, new, count in PATCHES:
        text = (dst / name).read_text()
        if text.count(old) != count:
            raise SystemExit(f"{checkout / name}: expected {count} x {old!r}, found "
                             f"{text.count(old)}; this benchmark knows commit 53f63a6 of the official code")
        (dst / name).write_text(text.replace(old, new))
    return dst


def official(checkout: Path, data_root: Path, ipc: int, iterations: int, env: dict) -> dict:
    """Run main_DM.py; seconds per iteration from the arrival times of its progress lines."""
    with tempfile.TemporaryDirectory() as save:
        cmd = [sys.executable, "-u", "main_DM.py", "--dataset", "MNIST", "--ipc", str(ipc),
               "--num_exp", "1", "--num_eval", "0", "--Iteration", str(iterations),
               "--data_path", str(data_root), "--save_path", save]
        env = {**env, "PYTHONPATH": str(HERE / "official")}
        t0, marks = time.perf_counter(), {}
        with subprocess.Popen(cmd, cwd=checkout, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) as p:
            tail = []
            for line in p.stdout:
                tail = (tail + [line])[-20:]
                if "iter = " in line:
                    marks[int(line.split("iter = ")[1].split(",")[0])] = time.perf_counter()
        if p.returncode:
            raise SystemExit(f"main_DM.py failed (exit {p.returncode}):\n{''.join(tail)}")
    its = sorted(marks)
    blocks = [(marks[b] - marks[a]) / (b - a) for a, b in zip(its[1:], its[2:])]
    shown = [c if c != save else "TMP" for c in cmd[1:]]
    return {"command": " ".join(shown), "seconds_per_iteration": statistics.median(blocks),
            "blocks": blocks, "wall_seconds": time.perf_counter() - t0}


def ours(data_root: Path, ipc: int, iterations: int, env: dict, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as out:
        cmd = ["synthset", "distill", "--recipe", "dm-paper", "--dataset", "mnist", "--ipc", str(ipc),
               "--iterations", str(iterations), "--data-root", str(data_root), "--out", out, *extra]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, env={**env, "SYNTHSET_DATA": str(data_root)},
                              capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"synthset failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
        meta = json.loads((Path(out) / "synthetic.json").read_text())["metadata"]
    shown = [c if c != out else "TMP" for c in cmd]
    return {"command": " ".join(shown), "seconds_per_iteration": meta["median_iteration_seconds"],
            "precision": {k: v["precision"] for k, v in (meta.get("precision") or {}).items()},
            "wall_seconds": time.perf_counter() - t0}


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--official", type=Path, required=True, help="checkout of DatasetCondensation")
    ap.add_argument("--data-root", type=Path,
                    default=Path(os.environ.get("SYNTHSET_DATA", HERE.parent.parent / "shared" / "data")),
                    help="folder holding MNIST/raw (default: $SYNTHSET_DATA or ../shared/data)")
    ap.add_argument("--ipc", type=int, default=10)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=40, help="official iterations per run")
    ap.add_argument("--ours-iterations", type=int, default=30)
    ap.add_argument("--ours", default="--compile", help="synthset flags beyond the recipe")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    if not (a.official / "main_DM.py").exists():
        raise SystemExit(f"{a.official} has no main_DM.py: give a checkout of "
                         "https://github.com/VICO-UoE/DatasetCondensation")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=a.official, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    body = {**header(sys.argv), "official_commit": commit, "changes": CHANGES, "ipc": a.ipc,
            "runs": []}
    with tempfile.TemporaryDirectory() as scratch:  # the patched copy, removed at the end
        checkout = patched_copy(a.official, Path(scratch))
        base = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        for heap in ("glibc default", "synthset"):
            env_official = {**base, **(SYNTHSET_HEAP if heap == "synthset" else {})}
            env_ours = {**base, **({"SYNTHSET_MALLOC": "system"} if heap == "glibc default" else {})}
            for pair in range(a.pairs):
                ref = official(checkout, a.data_root, a.ipc, a.iterations, env_official)
                syn = ours(a.data_root, a.ipc, a.ours_iterations, env_ours, a.ours.split())
                body["runs"].append({"allocator": heap, "pair": pair, "official": ref, "synthset": syn,
                                     "speedup": ref["seconds_per_iteration"] / syn["seconds_per_iteration"]})
                print(f"{heap} pair {pair}: official {ref['seconds_per_iteration']:.2f} s/it, "
                      f"synthset {syn['seconds_per_iteration']:.2f} s/it, "
                      f"{body['runs'][-1]['speedup']:.2f}x", flush=True)
                a.out.parent.mkdir(parents=True, exist_ok=True)
                a.out.write_text(json.dumps(body, indent=2))  # as the pairs finish

if __name__ == "__main__":
    main(sys.argv[1:])
