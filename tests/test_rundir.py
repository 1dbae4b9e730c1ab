"""Run directories are owned: refusal of an existing run, --overwrite, --resume, the lock."""
import os
import subprocess
import sys

import pytest

from synthset.cli import main
from synthset.engine.rundir import LOCK, RunDirError, owned


def _distill(out, *extra):
    return main(["distill", "--method", "random", "--ipc", "1", "--out", str(out), "--device", "cpu",
                 *extra])


def test_existing_run_is_refused_unless_resume_or_overwrite(tmp_path, shared_root, capsys):
    run = tmp_path / "r"
    assert _distill(run) == 0
    (run / "eval.json").write_text("{}")
    (run / "eval_runs.jsonl").write_text("")
    assert _distill(run) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--resume" in err and "--overwrite" in err
    assert _distill(run, "--overwrite") == 0
    assert not (run / "eval.json").exists() and not (run / "eval_runs.jsonl").exists()
    assert not (run / LOCK).exists()


def test_a_file_as_out_is_a_clear_error(tmp_path, shared_root, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert _distill(f) == 2
    assert "is a file, not a run directory" in capsys.readouterr().err


def test_a_live_lock_names_its_process_and_a_stale_one_is_taken(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (run / LOCK).write_text(str(holder.pid))
        with pytest.raises(RunDirError, match=f"PID {holder.pid}"):
            with owned(run):
                pass
    finally:
        holder.kill()
        holder.wait()
    with owned(run):  # the holder is gone: its lock is stale
        assert (run / LOCK).read_text() == str(os.getpid())
    assert not (run / LOCK).exists()


def test_resume_and_overwrite_together_are_refused(tmp_path):
    with pytest.raises(RunDirError, match="give one of them"):
        with owned(tmp_path / "r", resume=True, overwrite=True):
            pass


def test_method_options_appear_under_the_method_help(capsys):
    with pytest.raises(SystemExit):
        main(["distill", "--method", "dc", "--help"])
    out = capsys.readouterr().out
    assert "options of --method dc" in out and "--outer-loop" in out and "--inner-loop" in out
    with pytest.raises(SystemExit):
        main(["distill", "--help"])
    out = capsys.readouterr().out
    assert "--outer-loop" not in out and "synthset distill --method M --help" in out


def test_unknown_method_is_a_clear_error(tmp_path, capsys):
    assert main(["distill", "--method", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "unknown method 'nope'; choose one of: random" in capsys.readouterr().err


def test_a_folder_turned_read_only_reports_the_failed_write_not_the_lock(tmp_path, monkeypatch):
    """A run folder remounted read-only mid-run: the write's error (exit 74's message) must
    reach the user, not a second error from removing the lock (seen on a real read-only
    tmpfs: benchmarks/fault_table.py --only-disk)."""
    import errno
    from pathlib import Path

    from synthset.atomic import WriteError
    real_unlink = Path.unlink

    def read_only(self, missing_ok=False):
        if self.name.endswith(".lock"):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_unlink(self, missing_ok=missing_ok)
    with pytest.raises(WriteError, match="cannot write"):
        with owned(tmp_path / "run"):
            monkeypatch.setattr(Path, "unlink", read_only)
            raise WriteError(tmp_path / "run" / "checkpoint.safetensors",
                             OSError(errno.EROFS, "Read-only file system"))
