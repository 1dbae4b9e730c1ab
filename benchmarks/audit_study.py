"""Does a distilled set leak the images it was made from? The audit of several kinds of set
at one budget, one row per kind; writes JSON after every row (a rerun skips done rows).

    python benchmarks/audit_study.py --dataset mnist --out benchmarks/results/audit/mnist_ipc10.json
    python benchmarks/audit_study.py --dataset mhist --image-size 64 --model ConvNetD4 \\
        --kinds random dm-real --out benchmarks/results/audit/mhist64_ipc10.json

Per kind (random real, herding, DM from a random real start, DM from noise):
- memorisation: the set made on the whole training split, its nearest training images in
  pixel space and in the embedding of a ConvNet trained on the split, SSIM, near copies
  against the held-out-to-train 1st percentile, and (DM) the drift from its start
  (``synthset.audit.memorisation``);
- membership: ``synthset.membership.membership_attack``: members a random half, the target
  set made from them, ``--models`` protocol models per set, offline LiRA against
  ``--shadows`` shadow sets made the same way from other random halves, ``--audited``
  members and as many non-members scored; the target models' test accuracy beside it.
The upper reference, ``full``: models trained on all members (``--full-epochs``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

from header import header  # the script's own folder is on sys.path when run as a script

from synthset.audit import memorisation, pairs_grid  # noqa: E402
from synthset.autotune import native_bf16  # noqa: E402
from synthset.config import CoresetConfig, DataConfig, DistillConfig, EngineConfig, TrainConfig  # noqa: E402
from synthset.data import DATASETS, load_dataset  # noqa: E402
from synthset.membership import make_set, membership_attack  # noqa: E402
from synthset.methods.coreset import feature_net  # noqa: E402

CPU = torch.device("cpu")
KINDS = ("random", "herding", "dm-real", "dm-noise")


def kind_config(kind: str, args) -> DistillConfig:
    if kind in ("random", "herding"):
        return DistillConfig(method=kind, ipc=args.ipc, seed=0,
                             engine=EngineConfig(model=args.model))
    init = kind.split("-")[1]
    return DistillConfig(method="dm", ipc=args.ipc, seed=0, engine=EngineConfig(
        iterations=args.iterations, init=init, model=args.model, batch_real=args.batch_real,
        precision="auto", checkpoint_every=0, compile=args.compile))


def make(train, cfg: DistillConfig, seed: int):
    return make_set("set", train, cfg, device=CPU, seed=seed, log=lambda m: None)


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--image-size", type=int, default=None)
    ap.add_argument("--model", default="ConvNet")
    ap.add_argument("--ipc", type=int, default=10)
    ap.add_argument("--iterations", type=int, default=100, help="DM iterations per set")
    ap.add_argument("--batch-real", type=int, default=None)
    ap.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    ap.add_argument("--models", type=int, default=1, help="protocol models per set")
    ap.add_argument("--shadows", type=int, default=3)
    ap.add_argument("--audited", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=300, help="epochs of the models on a set")
    ap.add_argument("--full-epochs", type=int, default=10, help="epochs of the all-members model")
    ap.add_argument("--feature-epochs", type=int, default=None, help="the feature net's epochs")
    ap.add_argument("--held-out", type=int, default=2000)
    ap.add_argument("--compile", action="store_true", help="DM's compiled paths (same images, faster)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv[1:])
    out_path = Path(args.out)
    res = json.loads(out_path.read_text()) if out_path.exists() else {}
    res.setdefault("rows", {})
    precision = "bf16" if native_bf16(CPU) else "fp32"
    res["header"] = header(argv)
    res["protocol"] = {k: v for k, v in vars(args).items() if k not in ("out", "kinds", "compile")}
    res["protocol"]["train_precision"] = precision

    def save():
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(res, indent=2))

    data = DataConfig(name=args.dataset, image_size=args.image_size)
    train, test = load_dataset(data, "train"), load_dataset(data, "test")
    spec = DATASETS.get(args.dataset)
    held = test.normalized(torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[:args.held_out])
    fnet = feature_net(train, CoresetConfig(features="trained", feature_epochs=args.feature_epochs),
                       0, CPU, print).eval()

    @torch.no_grad()
    def embed(x):
        return torch.cat([fnet.embed(x[i:i + 1024]).float() for i in range(0, len(x), 1024)])

    tcfg = spec.train_config(TrainConfig(epochs=args.epochs, precision=precision))
    rows = [*args.kinds, "full"]
    for kind in rows:
        if kind in res["rows"]:
            print(f"{kind}: done")
            continue
        t0 = time.perf_counter()
        row = {}
        if kind != "full":
            cfg = kind_config(kind, args)
            syn, _ = make(train, cfg, 0)
            start = None
            if cfg.method == "dm":
                start, _ = make(train, dataclasses.replace(cfg, engine=dataclasses.replace(
                    cfg.engine, iterations=0)), 0)
            stats = memorisation(syn, train, held, embed=embed, start=start)
            order = torch.argsort(torch.tensor(stats["pixel_distances"]))[:10]
            pairs_grid(syn, train.normalized(torch.tensor(stats["nearest_train_index"])), order,
                       train.info, out_path.with_name(f"{out_path.stem}_{kind}_pairs.png"))
            for k in ("nearest_train_index", "pixel_distances"):
                stats.pop(k)
            row["memorisation"] = stats
            row["config"] = cfg.to_dict()
            print(f"{kind}: memorisation {time.perf_counter() - t0:.0f} s, near copies "
                  f"{stats['pixel']['near_copy_fraction']:.3f}", flush=True)
            mia = membership_attack("set", train, cfg, tcfg, model=args.model, audited=args.audited,
                                    models=args.models, shadows=args.shadows, seed=0, device=CPU,
                                    test=test)
        else:
            full_cfg = dataclasses.replace(tcfg, epochs=args.full_epochs)
            mia = membership_attack("full", train, kind_config("random", args), full_cfg,
                                    model=args.model, audited=args.audited, models=args.models,
                                    shadows=args.shadows, seed=0, device=CPU, test=test)
        row["membership"] = mia
        row["seconds"] = time.perf_counter() - t0
        row["machine"] = res["header"]["machine"]  # rows of one file may come from several runs
        res["rows"][kind] = row
        save()
        print(f"{kind}: {row['seconds']:.0f} s, loss AUC {mia['loss']['auc']:.3f}, LiRA AUC "
              f"{mia.get('lira_offline', {}).get('auc', float('nan')):.3f}, test acc "
              f"{mia.get('target_test_accuracy', float('nan')):.2f}", flush=True)
    save()


if __name__ == "__main__":
    main(sys.argv)
