"""The former flat configuration (one ``MatchConfig`` with the matching options, a
``datadam`` block) for the benchmark scripts written before the engine split, translated to
today's ``DistillConfig`` by ``synthset.config.legacy_distill`` (the same translation that
lets old run directories load). New benchmarks use ``synthset.distill`` directly."""
from __future__ import annotations

import dataclasses
import time

from synthset import config as _config
from synthset.config import DSAConfig
from synthset.data import DATASETS
from synthset.distill import run_method
from synthset.engine.runner import make_context
from synthset.engine.schedule import cosine_lr, ema_update  # noqa: F401 (re-exported)
from synthset.provenance import machine  # noqa: F401 (re-exported)


class MatchConfig(dict):
    """The old shared options as a dict; ``.dsa`` and attribute reads as before."""

    def __init__(self, **kw):
        super().__init__(**kw)

    def __getattr__(self, name):
        if name == "dsa":
            return DSAConfig(**self["dsa"]) if isinstance(self.get("dsa"), dict) else self.get("dsa", DSAConfig())
        if name in self:
            return self[name]
        defaults = {f.name: f.default for f in dataclasses.fields(_config.EngineConfig)}
        return defaults.get(name)


def DataDAMConfig(**kw) -> dict:
    return dict(kw)


def DistillConfig(*, method: str = "random", ipc: int = 10, seed: int = 0, coreset=None,
                  match=None, datadam=None) -> _config.DistillConfig:
    d = {"method": method, "ipc": ipc, "seed": seed, "match": dict(match or {}),
         "datadam": dict(datadam or {})}
    if isinstance(d["match"].get("dsa"), DSAConfig):
        d["match"]["dsa"] = d["match"]["dsa"].to_dict()
    if coreset is not None:
        d["coreset"] = coreset.to_dict() if hasattr(coreset, "to_dict") else dict(coreset)
    return _config.DistillConfig.from_dict(d)


def for_dataset(cfg, dataset: str):
    return DATASETS.get(dataset).train_config(cfg)


def match_loop(method, train, config, *, device, generator, log=print, run_dir=None,
               resume=False, data=None, progress=True, deadline=None, on_step=None):
    """The engine run of ``method``; ``deadline`` (a perf_counter time) becomes --max-time."""
    if deadline is not None:
        left = max(deadline - time.perf_counter(), 1e-3)
        config = dataclasses.replace(config, engine=dataclasses.replace(config.engine,
                                                                        max_time=f"{left:.3f}s"))
    return run_method(method, train, config, method.options(config.options), device=device,
                      generator=generator, log=log, run_dir=run_dir, resume=resume, data=data,
                      progress=progress, on_step=on_step)


def iteration_flops(method, config, train, n_real: int) -> int:
    """FLOPs of one iteration of ``config`` on the split ``train`` (real batch ``n_real``)."""
    config = dataclasses.replace(config, engine=dataclasses.replace(config.engine, batch_real=n_real))
    ctx = make_context(method, train, config, method.options(config.options), device="cpu")
    return method.iteration_flops(ctx)
