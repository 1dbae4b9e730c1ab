"""The header every benchmark JSON carries: the command, the machine (CPU model and the flags
that decide the fast paths), torch's CPU capability, versions and the git commit."""
from __future__ import annotations

import datetime
import shlex
import subprocess
from pathlib import Path

import torch

from synthset.provenance import machine, versions


def commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def header(argv: list[str]) -> dict:
    return {"command": shlex.join(["python", *argv]), "machine": machine(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "versions": versions(),
            "commit": commit(), "date": datetime.date.today().isoformat()}


if __name__ == "__main__":  # for shell benchmarks: python benchmarks/header.py bash THEIR_SCRIPT ARGS
    import json
    import sys
    print(json.dumps({**header(sys.argv[1:]), "command": shlex.join(sys.argv[1:])}))
