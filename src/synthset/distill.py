"""Entry point of a distillation run: load the training split, own the run directory, run
the method (a selection, or a learned method on the engine), and save the set with
everything a report needs (FLOPs, times, memory, versions, machine)."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable, Optional

import torch

from .atomic import write_json
from .config import DataConfig, DistillConfig
from .data import load_training
from .device import peak_memory_mib
from .distributed import current
from .engine import runner
from .engine.rundir import owned
from .methods import METHODS
from .methods.coreset import herding, select_coreset, with_feature_model
from .provenance import machine
from .synthetic import MethodOutput, SyntheticSet


def run_method(method, train, config: DistillConfig, options, *, device: torch.device,
               generator: torch.Generator, log: Callable[[str], None] = print,
               run_dir: Optional[Path] = None, resume: bool = False,
               data: Optional[DataConfig] = None, progress: bool = True,
               on_step=None) -> MethodOutput:
    """``method`` on a loaded training split: a selection, or the engine for a learned one."""
    if method.kind != "learned":
        return method.run(train, config, options, device=device, generator=generator, log=log)
    cfg = with_feature_model(config.coreset, config.engine.model)

    def start(k: int) -> torch.Tensor:  # --init herding: deterministic, draws nothing
        return select_coreset(herding, train, k, cfg, seed=config.seed, device=device, log=log)

    return runner.run(method, train, config, options, device=device, generator=generator,
                      log=log, run_dir=run_dir, resume=resume, data=data, progress=progress,
                      start=start, on_step=on_step)


def distill(data: DataConfig, config: DistillConfig, *, out_dir: Optional[str | Path] = None,
            device: torch.device = torch.device("cpu"), resume: bool = False,
            overwrite: bool = False, log: Callable[[str], None] = print,
            progress: bool = True, resume_or_start: bool = False) -> SyntheticSet:
    """Run ``config.method`` on the training split of ``data``; with ``out_dir`` save the set
    (safetensors + JSON), its config and its image grid there. ``out_dir`` must be new or
    empty unless ``resume`` (continue its checkpoint, which must exist) or ``overwrite``
    (replace it); ``resume_or_start`` continues a checkpoint if there is one."""
    resume = resume or resume_or_start
    method = METHODS.get(config.method)  # fail fast on a bad name or options, before loading data
    options = method.options(config.options)
    # the saved config names the method as registered and holds every option, defaults included
    config = dataclasses.replace(config, method=method.name, options=dataclasses.asdict(options))
    # under torchrun rank 0 owns the run directory and sends the others its checkpoint
    if out_dir is None or not current().is_main:
        return _make(method, data, config, options, device=device, run_dir=None,
                     resume=resume and out_dir is not None, log=log, progress=progress)
    with owned(out_dir, resume=resume, overwrite=overwrite,
               start_if_missing=resume_or_start) as run_dir:
        sset = _make(method, data, config, options, device=device, run_dir=run_dir,
                     resume=resume, log=log, progress=progress)
        sset.save(run_dir)
        write_json(run_dir / "config.json", {"data": data.to_dict(), "distill": config.to_dict()})
        sset.grid(run_dir / "grid.png")
    return sset


def _make(method, data, config, options, *, device, run_dir, resume, log, progress) -> SyntheticSet:
    train, val_split = load_training(data)
    generator = torch.Generator().manual_seed(config.seed)
    t0 = time.perf_counter()
    out = run_method(method, train, config, options, device=device, generator=generator, log=log,
                     run_dir=run_dir, resume=resume, data=data, progress=progress)
    seconds = time.perf_counter() - t0
    out.metadata.pop("iteration_seconds", None)  # per-iteration times: for benchmarks, not the set
    return SyntheticSet(images=out.images.detach().cpu(), labels=out.labels.cpu(), info=train.info,
                        factor=out.factor,
                        metadata={"method": method.name, "ipc": config.ipc, "seed": config.seed,
                                  "data": data.to_dict(), "distill": config.to_dict(),
                                  "distill_seconds": seconds, "device": str(device),
                                  "machine": machine(), "n_train_real": len(train),
                                  "val_split": val_split,
                                  "peak_memory_mib": round(peak_memory_mib(device), 1),
                                  **out.metadata})
