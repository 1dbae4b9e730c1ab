"""The fault table: faults injected into real `synthset` processes, many times each, and
what the user saw. Each row: the fault, how often it was injected, how often it landed
while the run was going, what the process printed, and whether the set it finally made
equals the uninterrupted run's (bit for bit).

    python benchmarks/fault_table.py --kills 20 --out benchmarks/results/faults.json

Small scale on purpose (the folder dataset's fake images, DM at IPC 2, a checkpoint after
every iteration, so that kills land in the middle of writes): the code paths are those of
a full run. Linux (signals, rlimits); not for Windows.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from synthset.data import DATASETS
from synthset.provenance import machine

ITERATIONS = 200


def distill(data: Path, out: Path, *extra: str, iterations: int = ITERATIONS) -> list[str]:
    return [sys.executable, "-m", "synthset.cli", "distill", "--dataset", "folder", "--data-path",
            str(data), "--method", "dm", "--ipc", "2", "--iterations", str(iterations),
            "--checkpoint-every", "1", "--batch-real", "4", "--init", "real", "--precision",
            "fp32", "--device", "cpu", "--out", str(out), *extra]


def loop_started(meta: Path, proc: subprocess.Popen) -> None:
    """Wait until the process writes its first checkpoint (its loop is going)."""
    before = meta.stat().st_mtime_ns if meta.exists() else 0
    while proc.poll() is None and (not meta.exists() or meta.stat().st_mtime_ns == before):
        time.sleep(0.02)


def same_set(a: Path, b: Path) -> bool:
    return torch.equal(load_file(str(a / "synthetic.safetensors"))["images"],
                       load_file(str(b / "synthetic.safetensors"))["images"])


def last_line(text: str) -> str:
    lines = [ln for ln in text.replace("\r", "\n").splitlines()
             if ln.strip() and "it/s" not in ln and "s/it" not in ln]
    return lines[-1].strip() if lines else ""


def kills(tmp: Path, data: Path, env: dict, ref: Path, n: int, seed: int) -> dict:
    """kill -9 at random moments of one run, resumed (--resume-or-start) after each."""
    rng, landed, iterations, parts = random.Random(seed), 0, [], 0
    run = tmp / "killed"
    for _ in range(n):
        proc = subprocess.Popen(distill(data, run, "--resume-or-start"), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        loop_started(run / "checkpoint.json", proc)
        time.sleep(rng.uniform(0.0, 0.5))  # then anywhere in an iteration or its checkpoint write
        landed += proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        parts += len(list(run.glob(".*.part")))  # cleared by the next start
        meta = run / "checkpoint.json"
        iterations.append(json.loads(meta.read_text())["iteration"] if meta.exists() else 0)
    res = subprocess.run(distill(data, run, "--resume-or-start"), env=env, capture_output=True,
                         text=True)
    return {"fault": "kill -9 at a random moment, then --resume-or-start", "injected": n,
            "landed_while_running": landed, "checkpoint_iteration_after_each_kill": iterations,
            "temporary_files_after_kills": parts,
            "temporary_files_at_the_end": len(list(run.glob(".*.part"))), "final_exit": res.returncode,
            "user_saw": last_line(res.stderr) or last_line(res.stdout),
            "final_equals_uninterrupted": res.returncode == 0 and same_set(run, ref)}


def size_limits(tmp: Path, data: Path, env: dict, ref: Path, margins: list[int]) -> dict:
    """A file-size limit (RLIMIT_FSIZE) just above the checkpoint: a later checkpoint write
    fails with EFBIG; the run must stop with a message and keep its last good checkpoint."""
    seen, kept, exits, equal = [], 0, [], 0
    for k, margin in enumerate(margins):
        run = tmp / f"limited{k}"
        subprocess.run(distill(data, run, iterations=5), env=env, check=True, capture_output=True)
        size = (run / "checkpoint.safetensors").stat().st_size

        def limit(cap=size + margin):
            resource.setrlimit(resource.RLIMIT_FSIZE, (cap, cap))
        res = subprocess.run(distill(data, run, "--resume"), env=env, capture_output=True,
                             text=True, preexec_fn=limit)
        exits.append(res.returncode)
        seen.append(last_line(res.stderr))
        try:
            kept += torch.isfinite(load_file(str(run / "checkpoint.safetensors"))["images"]).all().item()
        except Exception:
            pass
        again = subprocess.run(distill(data, run, "--resume"), env=env, capture_output=True)
        equal += again.returncode == 0 and same_set(run, ref)
    return {"fault": "a write past a file-size limit (RLIMIT_FSIZE, EFBIG), then --resume",
            "injected": len(margins), "exits": exits, "user_saw": seen[0],
            "last_checkpoint_readable": kept, "final_equals_uninterrupted": equal == len(margins)}


def shared_cache(tmp: Path, data: Path, rounds: int) -> dict:
    """Three distillations at once on one fresh cache, each round: the same trained feature
    network written by all three, their autotune choices in one file."""
    ok, entries, torn = 0, [], 0
    for r in range(rounds):
        cache = tmp / f"cache{r}"
        env = {**os.environ, "SYNTHSET_CACHE": str(cache)}
        procs = [subprocess.Popen(
            [sys.executable, "-m", "synthset.cli", "distill", "--dataset", "folder", "--data-path",
             str(data), "--method", "dm", "--ipc", "2", "--iterations", "2", "--init", "herding",
             "--features", "trained", "--feature-epochs", "2", "--feature-model", "ConvNetD2",
             "--model", model, "--precision", "auto", "--device", "cpu",
             "--out", str(tmp / f"shared{r}-{model}")],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for model in ("ConvNet", "ConvNetD2", "MLP")]
        codes = [p.wait(timeout=600) for p in procs]
        ok += codes == [0, 0, 0]
        try:
            entries.append(len(json.loads((cache / "autotune.json").read_text())))
        except (OSError, json.JSONDecodeError):
            torn += 1
        torn += len(list(cache.rglob("*.part")))
    return {"fault": "3 processes at once on one fresh cache (feature network, autotune)",
            "injected": rounds, "rounds_all_succeeded": ok, "autotune_entries_per_round": entries,
            "torn_or_temporary_files": torn, "final_equals_uninterrupted": None}


def two_evaluations(tmp: Path, data: Path, env: dict, ref: Path) -> dict:
    """`synthset evaluate` twice at once on one run directory."""
    args = ["--models", "ConvNet", "--runs", "2", "--epochs", "300", "--precision", "fp32",
            "--device", "cpu"]
    cmd = [sys.executable, "-m", "synthset.cli", "evaluate", str(ref), *args]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(4)
    second = subprocess.run(cmd, env=env, capture_output=True, text=True)
    first.wait()
    return {"fault": "a second `synthset evaluate` of one run directory while the first runs",
            "injected": 1, "second_exit": second.returncode, "user_saw": last_line(second.stderr),
            "first_exit": first.returncode, "final_equals_uninterrupted": None}


def real_disk(tmp: Path, data: Path, env: dict, ref: Path) -> list[dict]:
    """A real full disk and a real read-only folder: the run folder on its own small tmpfs
    (needs root), filled by another file or remounted read-only once the loop checkpoints;
    then space is freed (or the folder made writable again) and the run resumed."""
    mnt, sh = tmp / "disk", lambda *a: subprocess.run(a, capture_output=True).returncode
    mnt.mkdir()
    if sh("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)):
        return [{"fault": "a full disk, a read-only folder", "injected": 0,
                 "user_saw": "not injected: mounting a tmpfs needs root"}]

    def fill():
        with open(mnt / "ballast", "wb") as f:
            while f.write(bytes(1 << 16)):
                pass
    faults = (("a full disk (ENOSPC): the run's tmpfs filled by another file mid-run; then "
               "freed and --resume", fill, lambda: (mnt / "ballast").unlink()),
              ("a read-only folder (EROFS): the run's tmpfs remounted read-only mid-run; then "
               "writable and --resume", lambda: sh("mount", "-o", "remount,ro", str(mnt)),
               lambda: sh("mount", "-o", "remount,rw", str(mnt))))
    rows = []
    try:
        for k, (fault, act, undo) in enumerate(faults):
            run = mnt / f"run{k}"
            proc = subprocess.Popen(distill(data, run), env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True)
            loop_started(run / "checkpoint.json", proc)
            try:
                act()
            except OSError:  # the ballast met the full disk: that is the point
                pass
            err = proc.communicate()[1]
            readable = torch.isfinite(load_file(str(run / "checkpoint.safetensors"))["images"]).all()
            undo()
            again = subprocess.run(distill(data, run, "--resume"), env=env, capture_output=True)
            rows.append({"fault": fault, "injected": 1, "exits": [proc.returncode],
                         "user_saw": last_line(err), "last_checkpoint_readable": int(readable),
                         "final_equals_uninterrupted": again.returncode == 0 and same_set(run, ref)})
    finally:
        sh("umount", str(mnt))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--cache-rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/faults.json")
    ap.add_argument("--only-disk", action="store_true",
                    help="run the real-disk rows alone and replace them in OUT (kept rows stay)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        data = Path(DATASETS.get("folder").fake(tmp).path)
        env = {**os.environ, "SYNTHSET_CACHE": str(tmp / "cache")}
        ref = tmp / "ref"
        subprocess.run(distill(data, ref), env=env, check=True, capture_output=True)
        disk = real_disk(tmp, data, env, ref)
        rows = [r for r in json.loads(Path(args.out).read_text())["rows"]
                if "disk" not in r["fault"] and "read-only" not in r["fault"]] if args.only_disk else [
            kills(tmp, data, env, ref, args.kills, args.seed),
            size_limits(tmp, data, env, ref, [50, 200, 800]),
            shared_cache(tmp, data, args.cache_rounds), two_evaluations(tmp, data, env, ref)]
        rows += disk
    out, command = Path(args.out), " ".join(["python", *sys.argv])
    out.parent.mkdir(parents=True, exist_ok=True)
    head = ({"command": json.loads(out.read_text())["command"], "disk_command": command}
            if args.only_disk else {"command": command})
    out.write_text(json.dumps({**head, "machine": machine(), "rows": rows}, indent=2))
    for r in rows:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
