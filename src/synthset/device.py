"""Choosing the compute device from a user's ``--device`` string."""
from __future__ import annotations

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
