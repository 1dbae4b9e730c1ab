"""Faults injected into real runs, at a small scale: kill -9 at random moments then resume,
a write that fails under a file-size limit, three processes sharing one fresh cache, two
evaluations of one folder at once, and a log line cut short. The set must end equal to the
uninterrupted run's, and nothing already computed may be lost."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import folder_data
from safetensors.torch import load_file

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and rlimits")
ITERATIONS = 80


def _env(cache: Path) -> dict:
    return {**os.environ, "SYNTHSET_CACHE": str(cache), "PYTHONUNBUFFERED": "1"}


def _distill(data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "synthset.cli", "distill", "--dataset", "folder", "--data-path",
            str(data), "--method", "dm", "--ipc", "2", "--iterations", str(ITERATIONS),
            "--checkpoint-every", "1", "--batch-real", "4", "--init", "real", "--precision",
            "fp32", "--device", "cpu", "--out", str(out), *extra]


def _images(run: Path) -> torch.Tensor:
    return load_file(str(run / "synthetic.safetensors"))["images"]


@pytest.fixture
def data(tmp_path) -> Path:
    folder_data(tmp_path / "data", per_class=6, size=8, seed=0)
    return tmp_path / "data"


def test_kill_9_at_random_moments_then_resume_ends_equal_to_the_uninterrupted_run(tmp_path, data):
    env = _env(tmp_path / "cache")
    subprocess.run(_distill(data, tmp_path / "ref"), env=env, check=True, capture_output=True)
    rng, reached = random.Random(0), []
    meta = tmp_path / "run" / "checkpoint.json"
    for _ in range(3):
        proc = subprocess.Popen(_distill(data, tmp_path / "run", "--resume-or-start"), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        before = meta.stat().st_mtime_ns if meta.exists() else 0
        while proc.poll() is None and (not meta.exists() or meta.stat().st_mtime_ns == before):
            time.sleep(0.02)  # until the loop writes its first checkpoint
        time.sleep(rng.uniform(0.0, 0.15))  # then anywhere in an iteration or a write
        assert proc.poll() is None, "the run ended before the kill"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        reached.append(json.loads(meta.read_text())["iteration"])
    assert 0 < reached[0] <= reached[1] <= reached[2] <= ITERATIONS  # each life kept its progress
    res = subprocess.run(_distill(data, tmp_path / "run", "--resume-or-start"), env=env,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert torch.equal(_images(tmp_path / "run"), _images(tmp_path / "ref"))
    assert not list((tmp_path / "run").glob(".*.part")), "a killed write left its temporary file"


def _limit_file_size(limit: int):
    def set_limit():
        import resource
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return set_limit


def test_a_write_failing_under_a_file_size_limit_stops_with_a_message_and_keeps_the_checkpoint(
        tmp_path, data):
    env = _env(tmp_path / "cache")
    first = _distill(data, tmp_path / "run")
    first[first.index("--iterations") + 1] = "5"
    subprocess.run(first, env=env, check=True, capture_output=True)
    ckpt = tmp_path / "run" / "checkpoint.safetensors"
    good = ckpt.read_bytes()
    # the checkpoint grows with its loss history: a limit just above it fails a later write
    res = subprocess.run(_distill(data, tmp_path / "run", "--resume"), env=env, text=True,
                         capture_output=True, preexec_fn=_limit_file_size(len(good) + 200))
    assert res.returncode == 74, res.stderr[-2000:]
    assert "cannot write" in res.stderr and "file-size limit" in res.stderr
    assert "Traceback" not in res.stderr
    kept = load_file(str(ckpt))  # the last good checkpoint, whole
    assert torch.isfinite(kept["images"]).all() and len(ckpt.read_bytes()) <= len(good) + 200
    subprocess.run(_distill(data, tmp_path / "ref"), env=env, check=True, capture_output=True)
    res = subprocess.run(_distill(data, tmp_path / "run", "--resume"), env=env, text=True,
                         capture_output=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert torch.equal(_images(tmp_path / "run"), _images(tmp_path / "ref"))


def test_three_processes_share_a_fresh_cache_without_losing_or_tearing_an_entry(tmp_path, data):
    """Three distillations at once, one cache: each tunes its own network's arithmetic
    (--precision auto writes autotune.json) and all herd with the same trained feature
    network (one cache file written by all three)."""
    cache = tmp_path / "cache"
    procs = [subprocess.Popen(
        [sys.executable, "-m", "synthset.cli", "distill", "--dataset", "folder", "--data-path",
         str(data), "--method", "herding", "--ipc", "2", "--features", "trained",
         "--feature-epochs", "2", "--feature-model", "ConvNetD2", "--model", model,
         "--precision", "auto", "--device", "cpu", "--out", str(tmp_path / model)],
        env=_env(cache), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for model in ("ConvNet", "ConvNetD2", "MLP")]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    nets = list((cache / "feature_nets").glob("*.safetensors"))
    assert len(nets) == 1 and load_file(str(nets[0]))
    assert not list(cache.rglob("*.part"))
    first = _images(tmp_path / "ConvNet")
    assert all(torch.equal(first, _images(tmp_path / m)) for m in ("ConvNetD2", "MLP"))


def test_autotune_updates_from_many_processes_are_all_kept(tmp_path):
    """The autotune file is read, updated and replaced under a lock: 3 processes x 20
    updates at once leave 60 entries and valid JSON (unlocked, updates would be lost)."""
    code = ("import sys; from synthset import autotune\n"
            "for i in range(20): autotune._write(f'{sys.argv[1]}-{i}', {'precision': 'fp32'})\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, f"p{k}"], env=_env(tmp_path / "cache"))
             for k in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    data = json.loads((tmp_path / "cache" / "autotune.json").read_text())
    assert len(data) == 60


def test_a_second_evaluation_of_one_folder_is_refused_while_the_first_runs(tmp_path):
    from synthset.engine.rundir import RunDirError, evaluating
    holder = subprocess.Popen([sys.executable, "-c",
                               "import sys, time; from synthset.engine.rundir import evaluating\n"
                               "with evaluating(sys.argv[1]):\n"
                               "    print('held', flush=True); time.sleep(30)\n",
                               str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunDirError, match=f"being evaluated by another synthset process "
                                              f"\\(PID {holder.pid}"):
            with evaluating(tmp_path):
                pass
        with evaluating(tmp_path, "val"):  # the other split writes other files
            pass
    finally:
        holder.kill()
        holder.wait()
    with evaluating(tmp_path):  # the holder's lock is stale once it is gone
        pass


def test_a_log_line_cut_short_is_skipped_with_a_warning_and_never_swallows_the_next(tmp_path):
    from synthset.atomic import append_line, read_jsonl
    log = tmp_path / "eval_runs.jsonl"
    append_line(log, json.dumps({"run": 0}))
    with open(log, "a") as f:
        f.write('{"run": 1, "acc')  # a kill in the middle of a write
    append_line(log, json.dumps({"run": 2}))
    with pytest.warns(RuntimeWarning, match="line 2: not a whole record"):
        assert read_jsonl(log) == [{"run": 0}, {"run": 2}]


def test_writes_are_atomic_and_a_failed_one_keeps_the_old_file(tmp_path, monkeypatch):
    from synthset.atomic import WriteError, write_json
    path = tmp_path / "eval.json"
    write_json(path, {"v": 1})
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())

    def full_disk(self, data):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(Path, "write_bytes", full_disk)
    with pytest.raises(WriteError, match="eval.json: the disk is full. Nothing was lost"):
        write_json(path, {"v": 2})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"v": 1}
    assert os.listdir(tmp_path) == ["eval.json"]  # no temporary file left behind


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
