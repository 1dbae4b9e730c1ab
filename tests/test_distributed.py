"""torchrun: a 2-rank run (gloo, CPU) makes the set a 1-process run makes, evaluates to the
same per-run accuracies, resumes across a change of world size, and fails clearly.

The ranks are started with ``python -m torch.distributed.run`` (the module behind the
``torchrun`` command, with its ``--standalone`` rendezvous), on a tiny real MNIST written
in MNIST's own file format. Tolerance of the sets: the ranks sum their shard means of the
real batch (an all-reduce) where one process averages the whole batch, and the real forward
runs on half the batch, so the class means differ by float rounding (~1e-7 relative) and
the images by what a few SGD steps make of that: 1e-4 absolute after 4 iterations, against
image values of order 1 (the images of two different seeds differ by ~1); per method below.
"""
from __future__ import annotations

import gzip
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from synthset.distributed import World
from synthset.synthetic import SyntheticSet

from conftest import subset

TOL = 1e-4
# measured on a 2-core AMD EPYC: DM 9.5e-7, DataDAM 1.8e-4 (its attention maps are normalised
# powers of activations, which magnify rounding), DSA 4.8e-7
TOLERANCE = {"dm": 1e-5, "datadam": 1e-3, "dsa": 1e-5}


def _idx(path: Path, arr: np.ndarray) -> None:
    head = struct.pack(">I", 0x0800 | arr.ndim) + b"".join(struct.pack(">I", d) for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(head + arr.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory, mnist_train, mnist_test) -> Path:
    """40 real training and 20 real test images per class, as MNIST's gzipped IDX files."""
    root = tmp_path_factory.mktemp("tiny_mnist")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, data in (("train", subset(mnist_train, 40)), ("t10k", subset(mnist_test, 20, seed=1))):
        _idx(raw / f"{prefix}-images-idx3-ubyte.gz", data.images[:, 0].numpy())
        _idx(raw / f"{prefix}-labels-idx1-ubyte.gz", data.labels.numpy())
    return root


def _env(threads: int = 1) -> dict:
    # the 1-process reference runs on as many threads as each rank (torchrun sets 1), so
    # the kernels are the same and only the sharding differs
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}


def synthset(*argv, ranks: int = 1, timeout: float = 300, check: bool = True):
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                 f"--nproc-per-node={ranks}", "-m", "synthset"] if ranks > 1
                else [sys.executable, "-m", "synthset"])
    res = subprocess.run([*launcher, *map(str, argv)], env=_env(), capture_output=True, text=True,
                         timeout=timeout)
    if check:
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res


def distill_args(root, out, method="dm", iterations=4, *extra):
    return ["distill", "--method", method, "--ipc", "2", "--iterations", iterations,
            "--batch-real", "16", "--precision", "fp32", "--data-root", root, "--no-verify",
            "--out", out, "--device", "cpu", "--checkpoint-every", "2", *extra]


def images(run: Path) -> torch.Tensor:
    return SyntheticSet.load(run).images


def test_world_of_one_and_positions():
    w = World()
    assert w.is_main and not w.active and w.broadcast(3) == 3 and w.gather("x") == ["x"]
    assert World(rank=1, size=3).positions(8).tolist() == [1, 4, 7]
    shards = torch.cat([World(rank=r, size=3).positions(8) for r in range(3)]).sort().values
    assert shards.tolist() == list(range(8))  # disjoint and complete


@pytest.mark.parametrize("method", ["dm", "datadam", "dsa"])
def test_two_ranks_make_the_one_process_set(method, tiny_root, tmp_path):
    # DSA with one round per network: training the network on the set between rounds
    # amplifies the rounding difference (8.7e-3 after 2 iterations of 2 rounds)
    extra = ["--outer-loop", "1"] if method == "dsa" else []
    iterations = 2 if method == "dsa" else 4
    synthset(*distill_args(tiny_root, tmp_path / "one", method, iterations, *extra))
    # DM also evaluates every 2 iterations on rank 0 alone (no collectives meanwhile)
    watch = ["--eval-every", "2", "--eval-epochs", "1"] if method == "dm" else []
    two = synthset(*distill_args(tiny_root, tmp_path / "two", method, iterations, *extra, *watch),
                   ranks=2)
    if watch:
        assert len((tmp_path / "two" / "log.jsonl").read_text().splitlines()) == 2
    a, b = images(tmp_path / "one"), images(tmp_path / "two")
    diff = float((a - b).abs().max())
    print(f"{method}: max |one process - two ranks| = {diff:.3g}")
    assert diff < TOLERANCE[method]
    # the run moved the images (a run that did nothing would also be "equal")
    start = tmp_path / "start"
    synthset(*distill_args(tiny_root, start, method, 0, *extra))
    assert float((images(start) - a).abs().max()) > 100 * TOL
    assert two.stdout.count("saved ") == 1  # rank 0 alone speaks
    assert SyntheticSet.load(tmp_path / "two").metadata["world_size"] == 2


# A run cut on 2 ranks and resumed in 1 process (or the reverse) is not bit-exact: the
# 2-rank checkpoint differs from the 1-process state by float rounding (2.4e-7: the
# all-reduce sums the ranks' means in another order). `benchmarks/resume_divergence.py
# --trace` finds the operation: at the next iteration but one, one ReLU input of the
# synthetic pass (block 2) lies within 1e-7 of zero and that rounding puts it on the other
# side; its gradient path switches and, at the image lr of 1, the set moves by 2.5e-3 (AMD
# EPYC; 3.7e-3 on a 2-core Intel Xeon with AMX). Exact equality would need bitwise-equal
# reductions across world sizes, so the guarantee is this bound, checked on every CPU
# (two seeds differ by ~1):
RESUME_BOUND = 1e-2


def test_resume_across_a_change_of_world_size(tiny_root, tmp_path):
    synthset(*distill_args(tiny_root, tmp_path / "whole", "dm", 6))
    # stopped by its time budget after the first iteration on 2 ranks, resumed on 1
    synthset(*distill_args(tiny_root, tmp_path / "cut", "dm", 6, "--max-time", "0.001s"), ranks=2)
    assert SyntheticSet.load(tmp_path / "cut").metadata["iterations"] < 6
    synthset(*distill_args(tiny_root, tmp_path / "cut", "dm", 6, "--resume"))
    assert float((images(tmp_path / "whole") - images(tmp_path / "cut")).abs().max()) < RESUME_BOUND
    # and the other way: cut on 1 process, resumed on 2 ranks
    synthset(*distill_args(tiny_root, tmp_path / "cut1", "dm", 6, "--max-time", "0.001s"))
    synthset(*distill_args(tiny_root, tmp_path / "cut1", "dm", 6, "--resume"), ranks=2)
    assert float((images(tmp_path / "whole") - images(tmp_path / "cut1")).abs().max()) < RESUME_BOUND


def test_evaluation_under_torchrun_gives_the_one_process_runs(tiny_root, tmp_path):
    run = tmp_path / "run"
    synthset("distill", "--method", "random", "--ipc", "2", "--data-root", tiny_root, "--no-verify",
             "--out", run)
    other = tmp_path / "copy"
    other.mkdir()
    for f in run.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    args = ["--runs", "3", "--epochs", "3", "--precision", "fp32", "--device", "cpu"]
    synthset("evaluate", run, *args)
    synthset("evaluate", other, *args, ranks=2)
    one = json.loads((run / "eval.json").read_text())["models"]["ConvNet"]
    two = json.loads((other / "eval.json").read_text())
    assert two["world_size"] == 2
    assert two["models"]["ConvNet"]["runs"] == one["runs"] and len(one["runs"]) == 3
    assert two["models"]["ConvNet"]["seeds"] == one["seeds"]


def test_full_data_training_runs_data_parallel(tiny_root, tmp_path):
    out = tmp_path / "full"
    res = synthset("train", "--data-root", tiny_root, "--no-verify", "--epochs", "2", "--runs", "1",
                   "--precision", "fp32", "--out", out, "--device", "cpu", ranks=2)
    rep = json.loads((out / "eval.json").read_text())
    assert rep["world_size"] == 2 and rep["models"]["ConvNet"]["steps"] == 2 * 2, res.stdout


@pytest.mark.parametrize("argv,message", [
    (["evaluate", "RUN", "--workers", "2"], "under torchrun each rank is already one"),
    (["report", "RUN", "--out", "RUN"], "report runs in one process"),
])
def test_bad_inputs_under_torchrun(argv, message, tiny_root, tmp_path):
    argv = [str(tmp_path) if a == "RUN" else a for a in argv]
    res = synthset(*argv, ranks=2, check=False)
    assert res.returncode != 0 and message in res.stderr


def test_a_rank_that_dies_stops_the_run_and_keeps_the_checkpoint(tiny_root, tmp_path):
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
            "-m", "synthset", *map(str, distill_args(tiny_root, out, "dm", 100000))]
    proc = subprocess.Popen(argv, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.time() + 240
        while not (out / "checkpoint.safetensors").exists() and time.time() < deadline:
            time.sleep(0.5)
        assert (out / "checkpoint.safetensors").exists(), "no checkpoint was written"
        workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(workers) == 2
        os.kill(int(workers[-1]), signal.SIGKILL)  # a rank dies (not rank 0's own clean-up path)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert "ChildFailedError" in err or "failed" in err.lower()
    # the last checkpoint survives and the run resumes from it, on one process
    res = synthset(*distill_args(tiny_root, out, "dm", 100000, "--resume", "--max-time", "1s"))
    assert "resumed from" in res.stdout
