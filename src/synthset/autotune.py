"""``--precision auto``: the fastest arithmetic this machine has for each pass of a run,
chosen by timing the candidates on the run's own shapes and cached per machine.

Candidates: fp32 always (the accuracy reference); bf16 autocast only where the hardware
computes bf16 natively: a CPU with ``avx512_bf16`` or ``amx_bf16`` (elsewhere bf16 is
emulated and measured 12-20x slower than fp32), or a CUDA GPU that supports it (taken
without timing). On a CPU with both, each pass is timed for a few steps: the real batch's
no-grad forward, the synthetic batch's forward + backward, the evaluation's training step.
The choice is cached in ``autotune.json`` under the cache folder, keyed by CPU model and
flags, torch version, pass, model, input shape and whether it is compiled, and printed and
recorded with the run. On the CPU, fp32 keeps the backend each pass was tuned with (the
real path without oneDNN when compiled); bf16 runs with oneDNN, the only backend with bf16
convolution kernels here.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import torch

from .atomic import locked, write_json
from .device import synchronize
from .provenance import cpu

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively (not by emulation)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return any(f in cpu()["flags"] for f in NATIVE_BF16_FLAGS)


def cache_file() -> Path:
    from .paths import cache_dir
    return cache_dir() / "autotune.json"


def machine_key(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}|torch {torch.__version__}"
    c = cpu()
    return f"{c['model']}|{','.join(c['flags'])}|threads {torch.get_num_threads()}|torch {torch.__version__}"


def _read() -> dict:
    try:
        return json.loads(cache_file().read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _write(key: str, value: dict) -> None:
    """Add one choice: read, update and replace the file under a lock, so that processes
    tuning at once keep each other's choices (and a reader never sees half a file)."""
    path = cache_file()
    try:
        with locked(path):
            data = _read()
            data[key] = value
            write_json(path, data, indent=1)
    except OSError:  # a read-only cache costs a re-tune next time, nothing else
        pass


def time_calls(fns: dict[str, Callable[[], object]], device: torch.device, *, warmup: int = 2,
               repeat: int = 3) -> dict[str, float]:
    """Seconds per call of each of ``fns`` after ``warmup`` calls each, timed in interleaved
    rounds (a, b, a, b, ...) so that load from another process that starts or stops midway
    slows every candidate alike instead of the ones timed last; each candidate's least
    disturbed call (the minimum over the rounds) is its time."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            synchronize(device)
            t = time.perf_counter()
            fn()
            synchronize(device)
            times[name].append(time.perf_counter() - t)
    return {name: min(ts) for name, ts in times.items()}


def choose(kind: str, detail: str, device: torch.device, requested: str,
           bench: Callable[[str], Callable[[], object]], *,
           log: Callable[[str], None] = print) -> dict:
    """The precision of one pass: ``requested`` if it is fp32/bf16; for ``auto``, fp32 where
    bf16 is not native, bf16 on a GPU that has it, and on a CPU that has it the faster of the
    two as timed by ``bench(precision)`` (a zero-argument step), cached. Returns
    ``{"precision", "source", "seconds"}``."""
    if requested != "auto":
        return {"precision": requested, "source": "requested"}
    if not native_bf16(device):
        return {"precision": "fp32", "source": "no native bf16"}
    if device.type == "cuda":
        return {"precision": "bf16", "source": "native bf16 (GPU)"}
    result, source = _fastest(kind, detail, device, "precision", ("fp32", "bf16"), bench, log)
    return {**result, "source": source}


def _fastest(kind: str, detail: str, device: torch.device, field: str, candidates: tuple[str, ...],
             bench: Callable[[str], Callable[[], object]], log: Callable[[str], None],
             seconds_field: str = "seconds") -> tuple[dict, str]:
    """The candidate with the lowest ``time_calls`` of ``bench(candidate)``, cached under
    (machine, kind, detail): ``({field: best, seconds_field: {candidate: s}}, "timed")``, or
    the cached entry and ``"cache"``."""
    key = f"{machine_key(device)}|{kind}|{detail}"
    cached = _read().get(key)
    if cached and cached.get(field) in candidates:
        return cached, "cache"
    with torch.random.fork_rng(devices=[]):  # timing must not move the run's random state
        seconds = time_calls({c: bench(c) for c in candidates}, device)
    best = min(seconds, key=seconds.get)
    result = {field: best, seconds_field: seconds}
    _write(key, result)
    log(f"autotune {kind} ({detail}): " + ", ".join(f"{k} {v:.3f} s" for k, v in seconds.items())
        + f" per step -> {best} (cached in {cache_file()})")
    return result, "timed"


# inductor's layout optimisation (its default: channels-last around convolutions) or off (NCHW)
LAYOUTS = ("inductor", "nchw")


def choose_layout(kind: str, detail: str, device: torch.device,
                  bench: Callable[[str], Callable[[], object]], *,
                  log: Callable[[str], None] = print) -> dict:
    """The memory layout of a compiled CPU pass, timed by ``bench(layout)`` and cached like the
    precision. Neither wins everywhere: on a 2-core Intel Xeon with AMX, in bf16, DataDAM's
    synthetic pass at IPC 50 took 744 ms with the layout optimisation and 575 ms without (its
    attention maps sum over channels), DM's 376 ms with it and 1,249 ms without. Returns
    ``{"layout", "source", "layout_seconds"}``; on a GPU inductor's choice, untimed."""
    if device.type != "cpu":
        return {"layout": "inductor", "layout_source": "default (GPU)"}
    result, source = _fastest(kind, detail, device, "layout", LAYOUTS, bench, log, "layout_seconds")
    return {**result, "layout_source": source}
