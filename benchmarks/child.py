"""Run a benchmark variant in its own Python process (backend flags are process-wide) with a
fresh inductor cache, and read the JSON line it prints last."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile


def run_child(code: str, args) -> dict:
    """``python -c code json(args)``; its last stdout line as a dict, or ``{"error": ...}``."""
    with tempfile.TemporaryDirectory() as cache:  # no warm inductor cache between variants
        p = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True,
                           text=True, env={**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache})
    try:
        return json.loads(p.stdout.strip().splitlines()[-1])
    except Exception:
        return {"error": p.stderr.strip().splitlines()[-1][:300] if p.stderr else "no output"}
