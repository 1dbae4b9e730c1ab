"""How large the characteristic-function discrepancy's image gradient is against DM's (and
the Gaussian MMD's), on one real MNIST batch per class in a few random ConvNets: the check
behind ``--cf-scale``'s default (NCFM's 300), which puts its step at about DM's under DM's
image lr. Not a tuning: no split is scored.

    python benchmarks/cf_gradient_scale.py --out benchmarks/results/accuracy/cf_gradient_scale.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from header import header
from synthset.config import DataConfig
from synthset.data import load_dataset
from synthset.methods import METHODS
from synthset.models import build_model


def gradient_norms(real: torch.Tensor, syn: torch.Tensor, classes: int, seed: int) -> dict:
    """The norm of d loss / d syn for DM, the Gaussian MMD and the cf discrepancy at scale 1,
    all in the same random ConvNet (seeded ``seed``), frequencies drawn with that seed."""
    net = build_model("ConvNet", real.shape[1], classes, tuple(real.shape[2:]),
                      generator=torch.Generator().manual_seed(seed))
    dm, mmd = METHODS.get("dm"), METHODS.get("mmd")
    out = {}
    for name, method, options in (("dm", dm, dm.Options()),
                                  ("gaussian_mmd", mmd, mmd.Options(kernel="gaussian")),
                                  ("cf_scale_1", mmd, mmd.Options(kernel="cf", cf_scale=1.0))):
        x = syn.clone().requires_grad_()
        loss = method.loss(net, real, x, classes, options,
                           generator=torch.Generator().manual_seed(seed))
        grad, = torch.autograd.grad(loss, x)
        out[name] = {"loss": loss.item(), "grad_norm": grad.norm().item()}
    out["dm_over_cf"] = out["dm"]["grad_norm"] / out["cf_scale_1"]["grad_norm"]
    return out


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default=os.environ.get("SYNTHSET_DATA", "../shared/data"))
    p.add_argument("--real", type=int, default=64, help="real images per class")
    p.add_argument("--syn", type=int, default=20, help="synthetic images per class (real ones)")
    p.add_argument("--nets", type=int, default=3)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    train = load_dataset(DataConfig.from_dict({"name": "mnist", "root": a.root}), "train")
    classes = train.info.num_classes
    idx = torch.stack([torch.nonzero(train.labels == c).flatten()[:a.real + a.syn]
                       for c in range(classes)])
    real, syn = train.normalized(idx[:, :a.real].flatten()), train.normalized(idx[:, a.real:].flatten())
    rows = [{"seed": s, **gradient_norms(real, syn, classes, s)} for s in range(a.nets)]
    for r in rows:
        print(f"net {r['seed']}: DM / cf gradient norm {r['dm_over_cf']:.0f}")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({**header(["benchmarks/cf_gradient_scale.py", *argv]),
                                       "real_per_class": a.real, "syn_per_class": a.syn,
                                       "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
