"""Where a set's membership exposure lies: the members a set shows as they are or started from
(a random subset, a coreset, a real or herding start) against the other members, for attack
folders whose pipelines were made before ``synthset attack`` kept each set's start.

Each pipeline's start is made again by the product's own code at zero iterations (the seeded
random subset, the deterministic herding selection, the engine's seeded real start): nothing
is distilled or trained. Folders whose pipelines kept their starts are read as they are; a
noise start has none and is skipped.

    python benchmarks/lira_starts.py benchmarks/results/privacy/*-s32 benchmarks/results/privacy/*-s16 \\
        --out benchmarks/results/privacy/starts.json
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from header import header
from synthset.atomic import write_json
from synthset.config import DataConfig, DistillConfig
from synthset.data import load_dataset
from synthset.lira import LiraConfig, lira_scores, make_pool, start_exposure
from synthset.membership import make_set


def starts_of(folder: Path, train) -> torch.Tensor | None:
    """(S, N) bool: pool examples each pipeline's set started from (None: a noise start or
    the full data, where the split says nothing)."""
    c = json.loads((folder / "config.json").read_text())
    cfg = LiraConfig(**c["lira"])
    dc = DistillConfig.from_dict(c["distill"])
    if cfg.kind == "full" or (cfg.kind == "set" and dc.engine.init == "noise"):
        return None
    pool = make_pool(train, cfg)
    kept = [load_file(str(folder / f"shadow-{s:03d}" / "phi.safetensors")).get("start")
            for s in range(cfg.shadows)]
    if all(k is not None for k in kept):
        return torch.stack(kept).bool()
    # zero iterations and no experts: the start is drawn before either could draw anything
    replay = dataclasses.replace(dc, engine=dataclasses.replace(dc.engine, iterations=0, compile=False),
                                 options={**dc.options, **({"experts": 0} if "experts" in dc.options else {})})
    return torch.stack([pool.member_mask(s, make_set(cfg.kind, pool.members(train, s), replay,
                                                     device=torch.device("cpu"), seed=cfg.seed + 1000 + s,
                                                     log=lambda m: None).starts)
                        for s in range(cfg.shadows)])


def split(folder: Path, train) -> dict | None:
    start = starts_of(folder, train)
    if start is None:
        return None
    c = json.loads((folder / "config.json").read_text())
    cfg = LiraConfig(**c["lira"])
    pool = make_pool(train, cfg)
    phi = torch.stack([load_file(str(folder / f"shadow-{s:03d}" / "phi.safetensors"))["phi"]
                       for s in range(cfg.shadows)]).double()
    scores = lira_scores(phi, pool.keep, fixed_variance=cfg.fixed_variance)
    return {k: start_exposure(scores[k], pool.keep, start) for k in ("online", "offline")}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", type=Path, help="finished `synthset attack` folders")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    rows, trains = {}, {}
    for folder in args.folders:
        if not (folder / "lira.json").exists():
            print(f"{folder}: no lira.json (the attack has not finished); skipped", file=sys.stderr)
            continue
        data = json.loads((folder / "config.json").read_text())["data"]
        key = json.dumps(data, sort_keys=True)
        if key not in trains:
            trains[key] = load_dataset(DataConfig.from_dict(data), "train")
        row = split(folder, trains[key])
        if row is not None:
            rows[folder.name] = row
            o = row["online"]
            print(f"{folder.name}: starts {o['start_flagged']:.2%} of {o['start_members']} flagged at "
                  f"0.1% FPR (online); other members {o['other_flagged']:.2%} of {o['other_members']}")
    write_json(args.out, {**header(sys.argv), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
