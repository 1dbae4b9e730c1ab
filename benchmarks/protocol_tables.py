"""Coreset baselines and full-data references under the field's protocol; writes JSON.

Each job distills (random / herding / k-center) and evaluates with the full protocol
(ConvNet family, 1000 epochs, DSA); results are appended to the JSON file after every
job, so an interrupted run keeps what it finished.

  python benchmarks/protocol_tables.py --suite mnist --out benchmarks/results/mnist_coresets.json
  python benchmarks/protocol_tables.py --suite mhist64 --out benchmarks/results/mhist64_coresets.json

``--preloaded DIR`` reads decoded splits from DIR/<dataset>-<size>-<split>.safetensors
(written by ``--save-preloaded DIR``), for machines that hold no raw data folder.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

import sys as _sys; _sys.path.insert(0, __import__('os').path.dirname(__file__))  # legacy_api
from legacy_api import DistillConfig, for_dataset, machine
from synthset.config import CoresetConfig, DataConfig, EvalConfig, TrainConfig
from synthset.data import DatasetInfo, ImageData, load_dataset
from synthset.device import resolve_device
from synthset.evaluate import evaluate, format_table, summarize, train_full
from synthset.methods import METHODS
from synthset.synthetic import SyntheticSet
import sys as _hs; _hs.path.insert(0, __import__('os').path.dirname(__file__))  # noqa: E702
from header import header  # noqa: E402

SUITES = {
    # (dataset, image_size, model, method, ipc, runs)
    "mnist": [("mnist", None, "ConvNet", m, ipc, runs) for (m, ipc, runs) in [
        ("random", 1, 5), ("random", 10, 5), ("herding", 1, 3), ("kcenter", 1, 3),
        ("herding", 10, 3), ("kcenter", 10, 3), ("random", 50, 3), ("herding", 50, 3),
        ("kcenter", 50, 3)]],
    "mhist64": [("mhist", 64, "ConvNetD4", m, ipc, 3) for (m, ipc) in [
        ("random", 10), ("herding", 10), ("kcenter", 10), ("random", 50), ("herding", 50),
        ("kcenter", 50), ("random", 1), ("herding", 1), ("kcenter", 1)]],
}
FULL = {"mnist": ("mnist", None, "ConvNet"), "mhist64": ("mhist", 64, "ConvNetD4")}


def load_split(name, size, split, root, preloaded):
    if preloaded:
        from safetensors.torch import load_file
        p = Path(preloaded) / f"{name}-{size or 'native'}-{split}.safetensors"
        t = load_file(str(p))
        info = DatasetInfo.from_dict(json.loads((Path(preloaded) / f"{name}-{size or 'native'}.json").read_text()))
        return ImageData(images=t["images"], labels=t["labels"], info=info)
    return load_dataset(DataConfig(name=name, root=root, image_size=size), split)


def train_cfg(dataset, epochs, **kw):
    return for_dataset(TrainConfig(epochs=epochs, **kw), dataset)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--suite", choices=sorted(SUITES), required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--runs-dir", default="runs/bench")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--preloaded", default=None)
    ap.add_argument("--save-preloaded", default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--epochs", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=None, help="override runs per job")
    ap.add_argument("--only", default=None, help="comma list of method:ipc to run")
    ap.add_argument("--full-epochs", type=int, default=0, help="full-data reference epochs (0: skip)")
    ap.add_argument("--full-augment", action="store_true")
    ap.add_argument("--budget-s", type=float, default=1e9, help="stop starting jobs after this")
    args = ap.parse_args()
    t_start = time.time()
    device = resolve_device(args.device)
    jobs = SUITES[args.suite]
    name, size, _ = FULL[args.suite]
    train = load_split(name, size, "train", args.data_root, args.preloaded)
    test = load_split(name, size, "test", args.data_root, args.preloaded)
    if args.save_preloaded:
        from safetensors.torch import save_file
        d = Path(args.save_preloaded)
        d.mkdir(parents=True, exist_ok=True)
        for split, data in (("train", train), ("test", test)):
            save_file({"images": data.images, "labels": data.labels},
                      str(d / f"{name}-{size or 'native'}-{split}.safetensors"))
        (d / f"{name}-{size or 'native'}.json").write_text(json.dumps(train.info.to_dict()))
        print(f"saved preloaded splits to {d}")
        return
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(out.read_text()) if out.exists() else {"jobs": []}
    results.update({**header(sys.argv), "device": str(device)})
    done = {(j["method"], j["ipc"]) for j in results["jobs"]}
    only = set(args.only.split(",")) if args.only else None

    def save():
        out.write_text(json.dumps(results, indent=2))

    if args.full_epochs and "full" not in results:
        info = train.info
        tcfg = train_cfg(name, args.full_epochs, augment=args.full_augment)
        r = train_full(FULL[args.suite][2], train, test, tcfg, seed=0, run=0, device=device,
                       progress=False)
        results["full"] = {"augment": args.full_augment,
                           **summarize([r], n_train=len(train), info=info, model=r.model)}
        print(f"full data: {r.accuracy:.2f}% (balanced {r.balanced_accuracy:.2f}%) in {r.train_seconds:.0f}s", flush=True)
        save()

    for (dname, dsize, model, method, ipc, runs) in jobs:
        if (method, ipc) in done or (only and f"{method}:{ipc}" not in only):
            continue
        if time.time() - t_start > args.budget_s:
            print("budget exhausted; stopping", flush=True)
            break
        runs = args.runs or runs
        cfg = DistillConfig(method=method, ipc=ipc, seed=0,
                            coreset=CoresetConfig(feature_model=model))
        g = torch.Generator().manual_seed(cfg.seed)
        t0 = time.perf_counter()
        mo = METHODS.get(method).run(train, cfg, device=device, generator=g, log=print)
        distill_s = time.perf_counter() - t0
        sset = SyntheticSet(images=mo.images, labels=mo.labels, info=train.info,
                            metadata={"method": method, "ipc": ipc, "seed": 0,
                                      "data": {"name": dname, "image_size": dsize},
                                      "distill": cfg.to_dict(), "distill_seconds": distill_s})
        run_dir = Path(args.runs_dir) / f"{args.suite}-{method}-ipc{ipc}"
        sset.save(run_dir)
        sset.grid(run_dir / "grid.png")
        ecfg = EvalConfig(models=(model,), runs=runs, seed=0, train=train_cfg(dname, args.epochs))
        rep = evaluate(sset.images, sset.labels, test, ecfg, device=device, out_dir=run_dir,
                       progress=False)
        print(format_table(rep, f"{method} IPC {ipc}"), flush=True)
        results["jobs"].append({"method": method, "ipc": ipc, "model": model, "dataset": dname,
                                "image_size": dsize, "distill_seconds": distill_s,
                                **rep["models"][model]})
        save()
    print(f"done in {time.time() - t_start:.0f}s", flush=True)


if __name__ == "__main__":
    main()
