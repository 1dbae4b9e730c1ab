"""Entry point of a distillation run: load data, run the method, save the set."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Optional

import torch

from .config import DataConfig, DistillConfig
from .data import load_dataset
from .methods import METHODS
from .synthetic import SyntheticSet


def distill(data: DataConfig, config: DistillConfig, *, out_dir: Optional[str | Path] = None,
            device: torch.device = torch.device("cpu"),
            log: Callable[[str], None] = print) -> SyntheticSet:
    """Run ``config.method`` on the training split of ``data``; with ``out_dir`` save the set
    (safetensors + JSON), its config and its image grid there."""
    method = METHODS.get(config.method)  # fail fast on a bad name, before loading data
    train = load_dataset(data, "train")
    generator = torch.Generator().manual_seed(config.seed)
    t0 = time.perf_counter()
    out = method.run(train, config, device=device, generator=generator, log=log,
                     run_dir=Path(out_dir) if out_dir else None)
    seconds = time.perf_counter() - t0
    sset = SyntheticSet(images=out.images.detach().cpu(), labels=out.labels.cpu(), info=train.info,
                        metadata={"method": method.name, "ipc": config.ipc, "seed": config.seed,
                                  "data": data.to_dict(), "distill": config.to_dict(),
                                  "distill_seconds": seconds, "device": str(device),
                                  **out.metadata})
    if out_dir:
        out_dir = Path(out_dir)
        sset.save(out_dir)
        (out_dir / "config.json").write_text(json.dumps(
            {"data": data.to_dict(), "distill": config.to_dict()}, indent=2))
        sset.grid(out_dir / "grid.png")
    return sset
