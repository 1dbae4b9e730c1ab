"""What a run records about where it ran: package versions and the machine (CPU model and
flags, threads, GPU), so reports and benchmarks name the machine without guessing."""
from __future__ import annotations

import platform
import re
from pathlib import Path

import numpy as np
import torch

# CPU flags that decide the fast paths (native bf16, AVX-512, AMX).
FLAGS_OF_INTEREST = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "fma")


def versions() -> dict[str, str]:
    from . import __version__
    return {"synthset": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def cpu() -> dict:
    """The CPU's model name and the flags that matter here (Linux /proc/cpuinfo)."""
    model, flags = platform.processor() or platform.machine(), []
    try:
        text = Path("/proc/cpuinfo").read_text()
        m = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        f = re.search(r"^flags\s*:\s*(.+)$", text, re.M)
        model = m.group(1).strip() if m else model
        have = set(f.group(1).split()) if f else set()
        flags = [x for x in FLAGS_OF_INTEREST if x in have]
    except OSError:
        pass
    return {"model": model, "flags": flags}


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu": cpu(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
