"""Checkpoint files of a learned run: one safetensors file whose header carries the
metadata (iteration, history, config), so one atomic rename keeps tensors and iteration
consistent; ``checkpoint.json`` is a human-readable copy."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from ..atomic import write_safetensors, write_text
from ..config import VOLATILE_ENGINE, EngineConfig, legacy_distill
from .state import RunState

CHECKPOINT = "checkpoint.safetensors"
CHECKPOINT_META = "checkpoint.json"


def save(run_dir: Path, state: RunState, *, iteration: int, generator_state: torch.Tensor,
         seconds: float, config: dict, extra: Optional[tuple[dict, dict]] = None) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    tensors = {"images": state.images.detach().cpu().contiguous(),
               "generator": generator_state.clone()}
    buf = state.momentum_buffer()
    if buf is not None:
        tensors["momentum"] = buf.detach().cpu().contiguous()
    if state.ema is not None:
        tensors["ema"] = state.ema.detach().cpu().contiguous()
    extra_tensors, extra_meta = extra or ({}, {})
    tensors.update(extra_tensors)
    meta = json.dumps({"iteration": iteration, "history": state.history[:iteration],
                       "elapsed": state.elapsed[:iteration], "config": config,
                       "seconds": seconds, **extra_meta})
    # the tensors carry their own metadata (what resume reads); checkpoint.json is a copy to read
    write_safetensors(run_dir / CHECKPOINT, tensors, metadata={"meta": meta})
    write_text(run_dir / CHECKPOINT_META, meta)


def read(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, metadata) of a checkpoint; ValueError naming the file when it is corrupt."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads(f.metadata()["meta"])
        return load_file(str(path)), meta
    except Exception as e:  # a truncated or foreign file
        raise ValueError(f"the checkpoint {path} cannot be read ({e}); delete it to start "
                         f"again, or use --overwrite") from e


def comparable(config: dict, normalize_options) -> dict:
    """The parts of a distill config that decide the images (what resume must match):
    volatile engine options dropped; ``iterations`` dropped unless the lr schedule depends
    on it; method options with their defaults filled in (``normalize_options``)."""
    d = legacy_distill(json.loads(json.dumps(config)))
    d.pop("recipe", None)  # a name for the values below, which are compared themselves
    # options added since a checkpoint was written take their defaults (older runs resume)
    engine = {**EngineConfig().to_dict(), **d.get("engine", {})}
    for k in VOLATILE_ENGINE:
        engine.pop(k, None)
    if engine.get("lr_schedule", "constant") == "constant":
        engine.pop("iterations", None)
    d["engine"] = engine
    d["options"] = normalize_options(d.get("options", {}))
    return d
