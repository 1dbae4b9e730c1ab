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
