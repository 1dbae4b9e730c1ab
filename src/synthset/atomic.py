"""Crash-consistent files: every file synthset writes is either whole or absent.

A file is written under a temporary name of its own beside its final one, flushed to disk
(fsync) and renamed over the old version (a rename within a folder is atomic), and the
folder is flushed so that the rename itself survives a power cut. A ``kill -9`` at any
moment therefore leaves the old version or the new one, never part of one, and two
processes writing one file each rename a whole file of their own (the last one wins).
Logs are appended a whole line per write, flushed, and read back skipping a line that an
interruption cut short. A failed write (a full disk, a file-size limit, a read-only folder)
raises :class:`WriteError` naming the file, and the last good version stays where it was.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Iterator

_FREE = "free some space"
_PERMIT = "fix the folder's permissions or write elsewhere (--out)"
# errno: (the cause in words, what to do)
_WHY = {errno.ENOSPC: ("the disk is full", _FREE), errno.EDQUOT: ("the disk quota is used up", _FREE),
        errno.EFBIG: ("the file-size limit was reached", "raise the limit (ulimit -f)"),
        errno.EROFS: ("the file system is read-only", _PERMIT),
        errno.EACCES: ("permission denied", _PERMIT), errno.EPERM: ("permission denied", _PERMIT)}


class WriteError(OSError):
    """A file could not be written; the message names it, the cause and what to do."""

    def __init__(self, path: Path, cause: BaseException) -> None:
        code = getattr(cause, "errno", None)
        why, fix = _WHY.get(code, (getattr(cause, "strerror", None) or str(cause), "fix the cause"))
        super().__init__(code, f"cannot write {path}: {why}. Nothing was lost: the last "
                               f"complete version of the file is kept; {fix}, then run the "
                               f"command again (a distillation continues with --resume)")
        self.path = path

    def __str__(self) -> str:
        return self.strerror


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path for a writer to fill; on success it is flushed to disk and
    renamed over ``path``. On any failure the temporary file is removed and ``path`` is left
    as it was; an OSError becomes a :class:`WriteError`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        os.close(fd)
        os.chmod(name, 0o666 & ~_umask())  # mkstemp's 0600 would hide results from others
    except OSError as e:
        raise WriteError(path, e) from e
    tmp = Path(name)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync_folder(path.parent)
    except OSError as e:
        raise WriteError(path, e) from e
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes) -> None:
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj, *, indent: int | None = 2) -> None:
    write_text(path, json.dumps(obj, indent=indent))


def write_safetensors(path: str | Path, tensors: dict, metadata: dict | None = None) -> None:
    """Tensors in the safetensors format, written as above (serialised in memory first, so
    that a failed write surfaces as an OSError of ours, not the library's)."""
    from safetensors.torch import save
    write_bytes(path, save(tensors, metadata=metadata))


def append_line(path: str | Path, line: str) -> None:
    """Append one line, whole, and flush it to disk. A line cut short by an earlier
    interruption is ended first, so that it cannot swallow this one."""
    path = Path(path)
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab+") as f:
            if f.tell() > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    data = b"\n" + data
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise WriteError(path, e) from e


def read_jsonl(path: str | Path) -> list[dict]:
    """The records of a JSON-lines file; a line that is not whole JSON (an interrupted
    write) is skipped with a warning naming the file and line."""
    path = Path(path)
    out = []
    if not path.exists():
        return out
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            warnings.warn(f"{path}, line {n}: not a whole record (a write cut short by an "
                          f"interruption); skipped", RuntimeWarning, stacklevel=2)
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


@contextlib.contextmanager
def locked(path: str | Path, *, remove: bool = False) -> Iterator[None]:
    """Hold an exclusive lock on the hidden file ``.<name>.lock`` beside ``path`` (other
    processes wait), for a read-modify-write of a shared file such as the autotune cache.
    ``remove``: delete the lock file on the way out (a one-off job such as a download; a
    process that waited then finds the job done). Where file locks are not available the
    block runs unlocked: the writes above stay atomic, a concurrent update may then be
    lost, never half-written."""
    path = Path(path)
    lock = path.with_name(f".{path.name}.lock")
    try:
        import fcntl
        path.parent.mkdir(parents=True, exist_ok=True)
        f = open(lock, "a")
    except (ImportError, OSError):
        yield
        return
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if remove:
                lock.unlink(missing_ok=True)
            fcntl.flock(f, fcntl.LOCK_UN)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows, where folders cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
