"""Run directories are owned: a run refuses a directory that already holds another run
(unless resuming or overwriting), and a lock file stops a second process writing it."""
from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Iterator

LOCK = ".synthset.lock"
# What a run writes; --overwrite removes all of it, so no stale evaluation sits beside a new set.
OUTPUTS = ("synthetic.safetensors", "synthetic.json", "config.json", "grid.png",
           "checkpoint.safetensors", "checkpoint.json", "log.jsonl", "eval.json",
           "eval_runs.jsonl", "audit.json")


class RunDirError(ValueError):
    """The run directory cannot be used as asked; the message says what to do."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _take_lock(path: Path, name: str = LOCK, doing: str = "written") -> Path:
    lock = path / name
    for _ in range(50):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                pid = int(lock.read_text().strip() or 0)
                age = time.time() - lock.stat().st_mtime
            except (OSError, ValueError):
                pid, age = 0, 0.0
            if pid and pid != os.getpid() and _alive(pid):
                raise RunDirError(
                    f"{path} is being {doing} by another synthset process (PID {pid}, lock file "
                    f"{lock}); wait for it to finish, stop it, or choose another --out") from None
            if not pid and age < 2.0:  # just created: its owner is writing its PID
                time.sleep(0.05)
                continue
            lock.unlink(missing_ok=True)  # a stale lock: its process is gone
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return lock
    raise RunDirError(f"could not take the lock {lock}; delete it if no synthset process runs")


def _release(lock: Path) -> None:
    """Remove a lock this process holds. A folder that became read-only (or vanished) keeps
    the file: harmless, since the next start finds its process gone and takes it over; the
    error that stopped the run is the one to report, not this one."""
    with contextlib.suppress(OSError):
        lock.unlink(missing_ok=True)


@contextlib.contextmanager
def evaluating(path: str | Path, split: str = "test") -> Iterator[Path]:
    """Hold ``path``'s evaluation lock for ``split``: a second ``synthset evaluate`` writing
    the same folder and split at once is refused with the PID of the first (its run log
    would interleave with this one's and each would redo the other's runs)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    lock = _take_lock(path, f".synthset-evaluate-{split}.lock", "evaluated")
    try:
        yield path
    finally:
        _release(lock)


@contextlib.contextmanager
def owned(path: str | Path, *, resume: bool = False, overwrite: bool = False,
          start_if_missing: bool = False) -> Iterator[Path]:
    """Hold ``path`` as this process's run directory for the duration of the block.
    ``resume`` needs a checkpoint there, unless ``start_if_missing`` (then a run starts)."""
    from .checkpoint import CHECKPOINT
    path = Path(path)
    if resume and overwrite:
        raise RunDirError("--resume continues a run and --overwrite replaces it: give one of them")
    if resume and not start_if_missing and not (path / CHECKPOINT).exists():
        why = "does not exist" if not path.exists() else f"holds no {CHECKPOINT}"
        raise RunDirError(f"--resume: {path} {why}, so there is nothing to continue; drop "
                          f"--resume to start a new run there, or pass --resume-or-start to "
                          f"continue a run if there is one and start one otherwise")
    if path.exists() and not path.is_dir():
        raise RunDirError(f"--out {path} is a file, not a run directory; give the path of a "
                          f"folder (new or empty) to write the set into")
    path.mkdir(parents=True, exist_ok=True)
    lock = _take_lock(path)
    try:
        for part in path.glob(".*.part"):  # a writer killed mid-write (synthset.atomic) left it
            part.unlink(missing_ok=True)
        found = [name for name in OUTPUTS if (path / name).exists()]
        if found and not (resume or overwrite):
            raise RunDirError(
                f"{path} already holds a run ({', '.join(found)}); pass --resume to continue it, "
                f"--overwrite to replace it (its evaluations are removed too), or choose a new --out")
        if overwrite:
            for name in found:
                (path / name).unlink()
        yield path
    finally:
        _release(lock)
