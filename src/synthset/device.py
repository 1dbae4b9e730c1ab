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


# glibc's mallopt options (malloc.h) and the values reuse_freed_memory sets: blocks up to
# 1 GiB come from the heap, and the heap's free top is kept up to 2 GiB (mallopt takes an int)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD, _TRIM_THRESHOLD = 1 << 30, (1 << 31) - 1


def reuse_freed_memory() -> bool:
    """Keep freed CPU tensors in the process heap for the next allocation, instead of giving
    each one back to the OS. glibc serves blocks above 32 MiB by a fresh mmap, and every
    page of a fresh mapping is faulted in and zeroed on first write: a ConvNet's first-layer
    activations of a 128-image chunk (33 MiB in bf16) paid that on every call. Raising the
    threshold to 1 GiB (and keeping the heap's free top) made the first convolution of a 2,560-image MNIST forward 2.4x
    faster (bf16) and 3.2x (fp32) on a 2-core Intel Xeon with AMX. Peak memory is unchanged;
    the heap keeps it until the process ends. Process-wide and idempotent; a no-op (False)
    where the C library is not glibc or ``SYNTHSET_MALLOC=system`` is set."""
    import ctypes
    import os
    import platform

    if os.environ.get("SYNTHSET_MALLOC") == "system" or platform.system() != "Linux":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
                    and libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
    except (OSError, AttributeError):
        return False


def peak_memory_mib(device: torch.device) -> float:
    """Peak memory of this process so far: CUDA's max allocated on a GPU, else peak RSS
    (``ru_maxrss``, KiB on Linux)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
