"""Helpers shared by the tests: a distill config from flat keyword options (engine keys,
coreset keys and the method's own options told apart by their dataclasses) and the engine
run on an in-memory split."""
from __future__ import annotations

import dataclasses

import torch

from synthset.config import CoresetConfig, DistillConfig, EngineConfig
from synthset.distill import run_method
from synthset.methods import METHODS

CPU = torch.device("cpu")
ENGINE_KEYS = {f.name for f in dataclasses.fields(EngineConfig)}
CORESET_KEYS = {f.name for f in dataclasses.fields(CoresetConfig)}


def distill_config(method: str = "dm", ipc: int = 1, seed: int = 0, **kw) -> DistillConfig:
    engine = {k: v for k, v in kw.items() if k in ENGINE_KEYS}
    # numbers are checked in fp32, the reference, whatever the machine's auto would pick
    engine.setdefault("precision", "fp32")
    coreset = {k: v for k, v in kw.items() if k in CORESET_KEYS}
    options = {k: v for k, v in kw.items() if k not in ENGINE_KEYS | CORESET_KEYS}
    METHODS.get(method).options(options)  # unknown keys fail here
    return DistillConfig(method=method, ipc=ipc, seed=seed, engine=EngineConfig(**engine),
                         coreset=CoresetConfig(**coreset), options=options)


def match_loop(method, train, config: DistillConfig, *, device=CPU, generator=None,
               log=lambda m: None, run_dir=None, resume=False, progress=False, on_step=None):
    """``method`` (an instance) on ``train`` through the engine, as ``synthset.distill`` runs it."""
    generator = generator if generator is not None else torch.Generator().manual_seed(config.seed)
    return run_method(method, train, config, method.options(config.options), device=device,
                      generator=generator, log=log, run_dir=run_dir, resume=resume,
                      progress=progress, on_step=on_step)


def folder_data(root, *, per_class: int, size: int, seed: int):
    """A two-class ImageFolder tree of random RGB PNGs."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(seed)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
