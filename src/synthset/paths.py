"""Where synthset keeps what it can remake (the one cache folder: decoded data, feature
networks, experts, autotune choices)."""
from __future__ import annotations

import os
from pathlib import Path

ENV_CACHE = "SYNTHSET_CACHE"


def cache_dir() -> Path:
    """``$SYNTHSET_CACHE``, else ``$XDG_CACHE_HOME/synthset``, else ``~/.cache/synthset``."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "synthset"
