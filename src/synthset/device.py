"""Choosing the compute device from a user's ``--device`` string."""
from __future__ import annotations

import contextlib

import torch


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA if available else CPU; ``cuda``/``cuda:N`` must exist."""
    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name} was requested but no CUDA GPU is available "
                             f"(torch {torch.__version__}, torch.cuda.is_available() is False); "
                             f"use --device cpu or --device auto")
        return torch.device(name)
    raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, precision: str):
    """A factory of autocast contexts: bf16 autocast for ``precision == "bf16"``, else none
    (fp32 stays the reference)."""
    if precision == "bf16":
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


@contextlib.contextmanager
def onednn_state(enabled: bool):
    """oneDNN convolutions on or off for the block (the flag is process-wide)."""
    was = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = enabled
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = was


@contextlib.contextmanager
def onednn_off():
    """Route CPU convolutions to the im2col + BLAS kernels instead of oneDNN. On the 2-core
    AVX2 machine this made no-grad ConvNet forwards 1.24x faster (eager) and 2.56x with
    torch.compile (benchmarks/embed_speed.py); training steps were slower, so it is used
    for inference-only passes."""
    with onednn_state(False):
        yield


def peak_memory_mib(device: torch.device) -> float:
    """Peak memory of this process so far: CUDA's max allocated on a GPU, else peak RSS
    (``ru_maxrss``, KiB on Linux)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
