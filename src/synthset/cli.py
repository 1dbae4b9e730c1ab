"""Command-line interface: parses arguments and calls the library.

Every option is generated from a dataclass field (``synthset.config.opt``): its flag, type,
default and help live in one place. ``synthset distill --method M --help`` lists the options
of method M (its ``Options`` dataclass)."""
from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import signal
import sys
import threading
import time
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from .config import check, opt

# ---------------------------------------------------------------- options from dataclasses


def _base_type(tp):
    """(python type, is_tuple) of a field annotation: Optional[X] -> X, tuple[X, ...] -> X."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return _base_type(args[0])
    if typing.get_origin(tp) is tuple:
        return args[0], True
    return tp, False


def _flag(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or f.name.replace("_", "-")


def _parse_list(kind):
    def parse(text: str):
        try:
            return tuple(kind(v.strip()) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__}s, "
                                             f"got {text!r}") from None
    return parse


def add_options(parser, cls, prefix: str, *, defaults: Optional[dict] = None,
                title: Optional[str] = None, only: Optional[tuple[str, ...]] = None) -> None:
    """Add one flag per CLI field of dataclass ``cls`` (dest ``prefix.field``; ``only``: just
    those fields). A field without a default is a required flag. Each action keeps its field
    (``action.field``), so tests can hold every flag to its one default."""
    group = parser.add_argument_group(title) if title else parser
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.metadata.get("cli", True) or (only is not None and f.name not in only):
            continue
        default = (defaults or {}).get(f.name, f.default)
        kind, is_tuple = _base_type(hints[f.name])
        names = [f"--{_flag(f)}", *(f"--{a}" for a in f.metadata.get("aliases", ()))]
        help_ = f.metadata.get("help", "")
        dest = f"{prefix}.{f.name}" if prefix else f.name
        actions = []
        if kind is bool:
            if default:
                actions.append(group.add_argument(f"--no-{_flag(f)}", dest=dest, action="store_false",
                                                  default=True, help=f"turn off (on by default): {help_}"))
            else:
                actions.append(group.add_argument(*names, dest=dest, action="store_true",
                                                  default=False, help=help_))
                # lets a command line switch off what a recipe switched on
                actions.append(group.add_argument(f"--no-{_flag(f)}", dest=dest, action="store_false",
                                                  help=argparse.SUPPRESS))
        elif default is dataclasses.MISSING:
            actions.append(group.add_argument(*names, dest=dest, required=True, type=kind,
                                              metavar=f.name.upper(), help=help_))
        else:
            shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
            actions.append(group.add_argument(
                *names, dest=dest, default=default, metavar=f.name.upper(),
                type=_parse_list(kind) if is_tuple else kind, choices=f.metadata.get("choices"),
                help=help_ if shown in (None, "") or "(default" in help_ else
                f"{help_} (default: {shown})"))
        for a in actions:
            a.field = (cls, f)


def _field_default(cls, name: str):
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


def options_from(args, cls, prefix: str, **fixed):
    """Build ``cls`` from the parsed flags of ``add_options`` (plus ``fixed`` fields)."""
    values = {k[len(prefix) + 1:]: v for k, v in vars(args).items() if k.startswith(prefix + ".")}
    return cls(**values, **fixed)


# ---------------------------------------------------------------- commands


def _data_config(args):
    from .config import DataConfig
    return options_from(args, DataConfig, "data")


def _train_config(args):
    from .config import TrainConfig
    return options_from(args, TrainConfig, "train")


def _compute_config(args):
    from .config import ComputeConfig
    return options_from(args, ComputeConfig, "compute")


def _device(args):
    from .device import resolve_device
    return resolve_device(_compute_config(args).device)


def cmd_datasets(args) -> int:
    from .data import DATASETS
    from .data.download import data_root
    root = data_root(vars(args)["data.root"])
    print(f"data root: {root}")
    for name, spec in DATASETS.items():
        info = spec.info()
        classes = ", ".join(info.class_names[:5]) + (", ..." if info and info.num_classes > 5 else "") \
            if info else ""
        stats = (f"mean {info.mean}, std {info.std}" if info and info.mean
                 else "mean/std measured on the training images")
        facts = (f"{info.channels}x{info.size[0]}x{info.size[1]}, {info.num_classes} classes "
                 f"({classes}), {stats}; "
                 f"{'present' if spec.present(root) else 'not present'} under the root; "
                 if info else "")
        print(f"  {name:<16} {facts}{spec.where}")
    return 0


def cmd_methods(args) -> int:
    from .methods import METHODS
    for name, m in sorted(METHODS.items(), key=lambda nm: nm[1].order):
        print(f"  {name:<8} {m.kind:<9} {m.summary} ({m.citation})")
    print("options of a method: synthset distill --method M --help")
    return 0


def cmd_recipes(args) -> int:
    from .recipes import recipe, recipes
    if args.name is None:
        for name, r in recipes().items():
            print(f"  {r.tag:<24} {r.summary}")
            print(f"  {'':<24} measured: {_measured(r)}")
        print("use: synthset distill --recipe NAME --out RUN_DIR  (details: synthset recipes NAME)")
        return 0
    r = recipe(args.name)
    parser = build_parser(r.distill.get("method"))
    flags = _flags_of(parser)
    shown = []
    for dest, value in r.settings().items():
        flag = flags.get(dest, f"--{dest.split('.')[-1]}")
        if value is True:
            shown.append(flag)
        elif value is not False:
            shown.append(f"{flag} {','.join(map(str, value)) if isinstance(value, tuple) else value}")
    print(f"{r.tag}: {r.summary}\n")
    print(f"  sets:      {' '.join(shown)}")
    print(f"  run:       synthset distill --recipe {r.name} --out RUN_DIR")
    print(f"  evaluate:  {r.evaluate_command()}")
    print(f"  measured:  {_measured(r)}")
    return 0


def _measured(r) -> str:
    m = r.measured
    if not m:
        return "not measured"
    part = f"; {m['partial']}" if m.get("partial") else ""
    chosen = {"val": "settings chosen on the validation split",
              "test": "settings chosen on the test split (before the validation split existed)",
              "paper": "the paper's settings"}[m["selected_on"]]
    # experts a cache served were trained before the run's clock started: count them too
    setup = m.get("cached_setup_seconds", 0)
    took = (f"{(m['distill_seconds'] + setup) / 60:.1f} min (the run {m['distill_seconds'] / 60:.1f}"
            f" + cached experts' training {setup / 60:.1f})" if setup
            else f"{m['distill_seconds'] / 60:.1f} min")
    return (f"{m['accuracy']:.2f} ± {m['std']:.2f}% ({m['model']}, {m['runs']} run(s) x "
            f"{m['epochs']} epochs), distillation {took}{part}; "
            f"{chosen}; {m['machine']}; {m['source']}")


def _flags_of(parser) -> dict[str, str]:
    """destination -> the flag that sets it, over the distill subcommand's options."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a.option_strings[0] for a in sub.choices["distill"]._actions
            if a.option_strings}


def _given(argv: list[str], method: Optional[str]) -> set[str]:
    """The destinations set on the command line itself (not by a default)."""
    quiet = build_parser(method)
    for sub in (a for a in quiet._actions if isinstance(a, argparse._SubParsersAction)):
        for p in sub.choices.values():
            for a in p._actions:
                a.default = argparse.SUPPRESS
    return set(vars(quiet.parse_args(argv)))


def apply_recipe(args, argv: list[str]) -> None:
    """Fill every option the recipe names and the command line does not (explicit flags win)."""
    from .recipes import recipe
    r = recipe(args.recipe)
    given = _given(argv, _method_of(argv))
    method = r.distill.get("method")
    if method and "method" in given and args.method != method:
        raise ValueError(f"recipe {r.name} is for --method {method}; drop --method {args.method} "
                         f"or choose a {args.method} recipe (synthset recipes)")
    overridden = []
    for dest, value in r.settings().items():
        if not hasattr(args, dest):
            raise ValueError(f"recipe {r.name} sets {dest}, which --method {args.method} has not")
        if dest in given:
            overridden.append(dest)
        else:
            setattr(args, dest, value)
    args.recipe = r.tag
    note = f"; the command line overrides {', '.join(overridden)}" if overridden else ""
    print(f"recipe {r.tag}: {r.summary}{note}")


def cmd_distill(args) -> int:
    from .config import CoresetConfig, DistillConfig, EngineConfig
    from .distill import distill
    from .methods import METHODS
    method = METHODS.get(args.method)
    options = options_from(args, method.Options, "method")
    cfg = DistillConfig(method=method.name, ipc=args.ipc, seed=args.seed,
                        coreset=options_from(args, CoresetConfig, "coreset"),
                        engine=options_from(args, EngineConfig, "engine"),
                        options=dataclasses.asdict(options), recipe=args.recipe)
    c = options_from(args, DistillCommand, "cmd")
    t0 = time.perf_counter()
    try:
        sset = distill(_data_config(args), cfg, out_dir=c.out, device=_device(args),
                       resume=c.resume, overwrite=c.overwrite, resume_or_start=c.resume_or_start)
    except KeyboardInterrupt:
        print(f"interrupted: rerun the same command with --resume to continue from the checkpoint "
              f"in {c.out}", file=sys.stderr)
        return 130
    decoded = (f"; multi-formation factor {sset.factor}: models train on {sset.n_train}"
               if sset.factor > 1 else "")
    its = sset.metadata.get("iterations")
    done = f" after {its} iterations" if its is not None else ""
    print(f"saved {len(sset.labels)} images ({sset.ipc} per class{decoded}) of {sset.info.name} "
          f"to {c.out}{done} in {time.perf_counter() - t0:.1f}s; grid: {Path(c.out) / 'grid.png'}")
    return 0


def _evaluation_set(args):
    """(set, run directory, data config) of ``synthset evaluate``'s argument: a synthset run
    directory, or a set made by another tool (imported into ``PATH.synthset`` or --out)."""
    from .config import DataConfig
    from .data import load_dataset
    from .foreign import detect_format, imported_dir, load_foreign
    from .synthetic import SyntheticSet
    path = Path(args.run_dir)
    c = options_from(args, EvaluateCommand, "cmd")
    given = {k[5:]: v for k, v in vars(args).items() if k.startswith("data.") and v is not None}
    split = vars(args)["eval.split"]
    if detect_format(path) == "synthset":
        sset = SyntheticSet.load(path)
        d = dict(sset.metadata.get("data", {"name": sset.info.name}))
        if given.get("name", d["name"]) != d["name"]:
            raise ValueError(f"{path} is a {d['name']} set; drop --dataset {given['name']}")
        data = DataConfig.from_dict({**d, **given})
        # --out keeps a second protocol (e.g. other architectures) beside the run's eval.json
        out = Path(c.out) if c.out else path
        return sset, out, data, load_dataset(data, split)
    if "name" not in given:
        raise ValueError(f"{path} is a set made by another tool ({detect_format(path)}): name its "
                         f"dataset with --dataset (see `synthset datasets`)")
    data = DataConfig(**given)
    test = load_dataset(data, split)
    sset = load_foreign(path, test.info, index=c.set_index)
    sset.metadata["data"] = data.to_dict()
    run_dir = Path(c.out) if c.out else imported_dir(path)
    if (run_dir / "synthetic.json").exists():
        held = SyntheticSet.load(run_dir).metadata.get("source", {}).get("sha256")
        if held != sset.metadata["source"]["sha256"]:
            raise ValueError(f"{run_dir} holds another set than {path} (or an older version of "
                             f"it); remove it or give --out")
    else:
        sset.save(run_dir)
        sset.grid(run_dir / "grid.png")
    print(f"imported {path} ({sset.metadata['source']['format']}) into {run_dir}")
    return sset, run_dir, data, test


def cmd_evaluate(args) -> int:
    from .config import EvalConfig
    from .data import DATASETS
    from .evaluate import evaluate, format_table, results_files
    from .models import MODELS
    device = _device(args)
    sset, run_dir, data, test = _evaluation_set(args)
    ev = options_from(args, EvalConfig, "eval",
                      train=DATASETS.get(data.name).train_config(_train_config(args)))
    cfg = dataclasses.replace(ev, models=tuple(MODELS.canonical(m) for m in ev.models))
    shown = f" decoded from {len(sset.labels)} stored" if sset.factor > 1 else ""
    print(f"evaluating {run_dir} ({sset.n_train} images{shown}) with {', '.join(cfg.models)}: "
          f"{cfg.runs} runs x {cfg.train.epochs} epochs on {device}")
    try:
        report = evaluate(*sset.decoded(), test, cfg, device=device, out_dir=run_dir,
                          workers=_compute_config(args).workers)
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished runs are kept in {run_dir / results_files(cfg.split)[1]}; "
              f"run the same command again to continue", file=sys.stderr)
        return 130
    print(format_table(report, f"{sset.metadata.get('method', '?')} IPC {sset.ipc} on {sset.info.name}"))
    print(f"wrote {run_dir / results_files(cfg.split)[0]}")
    return 0


def cmd_train(args) -> int:
    """Full-data reference: the protocol's network(s) trained on the whole training split.
    With --out, each finished run is kept in OUT/eval_runs.jsonl and not redone."""
    from .config import EvalConfig
    from .data import DATASETS, load_dataset
    from .evaluate import evaluate, format_table
    from .models import MODELS
    device = _device(args)
    data = _data_config(args)
    train = load_dataset(data, "train")
    test = load_dataset(data, args.__dict__["eval.split"])
    info = train.info
    ev = options_from(args, EvalConfig, "eval",
                      train=DATASETS.get(data.name).train_config(_train_config(args)))
    cfg = dataclasses.replace(ev, models=tuple(MODELS.canonical(m) for m in ev.models))
    c = options_from(args, TrainCommand, "cmd")
    out = Path(c.out) if c.out else None
    if c.subset:
        from .data.split import balanced_subset
        train = balanced_subset(train, c.subset, seed=cfg.seed)
    print(f"training {', '.join(cfg.models)} on {'a class-balanced subset of' if c.subset else 'all'} "
          f"{len(train)} {info.name} training images: "
          f"{cfg.runs} runs x {cfg.train.epochs} epochs, augment={cfg.train.augment}, on {device}")
    try:
        report = evaluate(train.images, train.labels, test, cfg, device=device, out_dir=out,
                          workers=_compute_config(args).workers, tag="subset" if c.subset else "full",
                          config_extra={"data": data.to_dict(), "subset": c.subset},
                          data_parallel=True)
    except KeyboardInterrupt:
        kept = f"finished runs are kept in {out / 'eval_runs.jsonl'}; " if out else ""
        print(f"\ninterrupted: {kept}run the same command again to continue", file=sys.stderr)
        return 130
    print(format_table(report, f"full {info.name} training set"))
    if out:
        print(f"wrote {out / 'eval.json'}")
    return 0


def eval_config(argv: list[str]):
    """The EvalConfig a ``synthset evaluate`` command line asks for (the study runner
    compares it with what a results file holds)."""
    from .config import EvalConfig
    args = build_parser().parse_args(argv)
    return options_from(args, EvalConfig, "eval", train=_train_config(args))


def cmd_study(args) -> int:
    """Run a study file's unfinished runs (distill, then evaluate) and write its results."""
    from .provenance import machine, versions
    from .study import can_resume, distilled, evaluated, load_study, write_results
    study = load_study(args.file)
    header = {"command": shlex.join(["synthset", "study", args.file]), "machine": machine(),
              "versions": versions()}
    c = options_from(args, StudyCommand, "cmd")
    unknown = set(c.only) - {r.name for r in study.runs}
    if unknown:
        raise ValueError(f"--only names {', '.join(sorted(unknown))}, which {args.file} has not; "
                         f"its runs: {', '.join(r.name for r in study.runs)}")
    runs = [r for r in study.runs if not c.only or r.name in c.only]
    if c.report_only:
        print(f"wrote {write_results(study, header)}")
        return 0
    for run in runs:
        steps = []
        if run.distill and not distilled(study, run):
            steps.append(study.distill_argv(run, resume=can_resume(study, run)))
        if not evaluated(study, run, eval_config):
            steps.append(study.evaluate_argv(run))
        for argv in steps:
            print(f"[{study.name}/{run.name}] synthset {shlex.join(argv)}", flush=True)
            if c.dry_run:
                continue
            code = main(argv)
            if code:
                print(f"[{study.name}/{run.name}] stopped (exit {code}); rerun the study to "
                      f"continue", file=sys.stderr)
                return code
        if not c.dry_run:  # rows as they finish: a stopped study keeps what it measured
            write_results(study, header)
    if not c.dry_run:
        print(f"wrote {study.out / 'study.json'}")
    return 0


def cmd_show(args) -> int:
    from .synthetic import SyntheticSet
    c = options_from(args, ShowCommand, "cmd")
    sset = SyntheticSet.load(args.run_dir)
    out = Path(c.out or Path(args.run_dir) / "grid.png")
    sset.grid(out, max_per_class=c.max_per_class)
    print(f"wrote {out}")
    return 0


def cmd_export(args) -> int:
    from .synthetic import SyntheticSet
    c = options_from(args, ExportCommand, "cmd")
    sset = SyntheticSet.load(args.run_dir)
    if c.format == "png":
        print(f"wrote {sset.export_png_folder(c.out)}")
    else:
        print(f"wrote {sset.export_dcbench(c.out)}")
    return 0


def cmd_audit(args) -> int:
    from .audit import AuditConfig, audit
    cfg = options_from(args, AuditConfig, "audit")
    rep = audit(args.run_dir, cfg, device=_device(args), data_root=vars(args)["data.root"])
    m = rep["memorisation"]
    px = m["pixel"]
    print(f"{rep['n_synthetic']} synthetic images against {rep['n_train']} training images "
          f"(baseline: {rep['n_held_out']} held-out test images)")
    print(f"  pixel:   near copies {100 * px['near_copy_fraction']:.1f}%, median nearest distance "
          f"{px['synthetic_to_train']['median']:.3f} (held-out: {px['held_out_to_train']['median']:.3f})")
    if "feature" in m:
        ft = m["feature"]
        print(f"  feature: near copies {100 * ft['near_copy_fraction']:.1f}%, median nearest distance "
              f"{ft['synthetic_to_train']['median']:.3f} (held-out: {ft['held_out_to_train']['median']:.3f})")
    print(f"  median SSIM to the nearest training image: {m['ssim_to_nearest']['median']:.3f}")
    if "drift_from_start" in m:
        print(f"  moved from its start: {100 * m['drift_from_start']['relative_rms']:.1f}% of its RMS")
    for row in (rep["membership"] or {}).get("rows", []):
        parts = [f"{a} AUC {row[a]['auc']:.3f}, TPR@1%FPR {100 * row[a]['tpr_at_0.01_fpr']:.1f}%"
                 for a in ("loss", "lira_offline") if a in row]
        print(f"  membership, {row['kind']}: " + "; ".join(parts))
    print(f"wrote {Path(args.run_dir) / 'audit.json'} and audit_pairs.png. {rep['reading']}")
    return 0


def cmd_attack(args) -> int:
    from .lira import LiraConfig, attack
    cfg = options_from(args, LiraConfig, "lira")
    c = options_from(args, AttackCommand, "cmd")
    training = {k: vars(args)[f"train.{k}"] for k in ATTACK_TRAINING}
    rep = attack(args.run_dir, cfg, out=c.out, device=_device(args), data_root=vars(args)["data.root"],
                 workers=_compute_config(args).workers, training=training)
    print(f"{cfg.kind}: {cfg.shadows} pipelines x {cfg.pool} pool images = {rep['pairs']} scored "
          f"pairs; median {rep['seconds_median']:.0f} s per pipeline (mean "
          f"{rep['seconds_per_pipeline']:.0f} s: a pipeline slowed by other work weighs on it); "
          f"the pipelines' networks score {rep['test_accuracy']:.2f}% on test")
    for name in ("online", "offline"):
        r = rep[name]
        lo, hi = r["tpr_at_0.001_fpr_ci"]
        low = (f"{100 * r['tpr_at_0.001_fpr']:.2f}% [{100 * lo:.2f}, {100 * hi:.2f}] at 0.1% FPR"
               if r["fpr_0.001_resolvable"] else
               f"0.1% FPR not resolvable with {r['non_members']} non-member pairs")
        print(f"  LiRA {name}: AUC {r['auc']:.3f}, TPR {100 * r['tpr_at_0.01_fpr']:.2f}% at 1% FPR, "
              f"{low}")
    if "canaries" in rep:
        k = rep["canaries"]
        print(f"  canaries: {100 * k['canaries_flagged']:.1f}% flagged at 0.1% FPR (ordinary members "
              f"{100 * k['members_flagged']:.1f}%), AUC {k['canary_auc']:.3f}; nearest set image "
              f"{k['nn_distance_in']:.2f} away when in, {k['nn_distance_out']:.2f} when out")
    return 0


def cmd_report(args) -> int:
    import shlex

    from .report import build_report
    c = options_from(args, ReportCommand, "cmd")
    command = shlex.join(["synthset", "report", *args.run_dirs, "--out", c.out]
                         + (["--title", c.title] if c.title != _field_default(ReportCommand, "title") else []))
    paths = build_report(args.run_dirs, c.out, title=c.title, command=command)
    print(f"wrote {paths['html']} and {paths['markdown']} (figures beside them)")
    return 0


def cmd_compare(args) -> int:
    from .report import compare
    print(compare(args.run_dirs))
    return 0


# ---------------------------------------------------------------- the parser


@dataclass(frozen=True, kw_only=True)
class DistillCommand:
    """What ``synthset distill`` does with its run directory."""

    out: str = opt(help="run directory to write (new or empty)")
    resume: bool = opt(False, "continue from OUT's checkpoint")
    resume_or_start: bool = opt(False, "continue from OUT's checkpoint if it has one, else "
                                       "start a run there")
    overwrite: bool = opt(False, "replace the run in OUT (its evaluations are removed too)")


@dataclass(frozen=True, kw_only=True)
class EvaluateCommand:
    """Where ``synthset evaluate`` writes, and which set of an official file it reads."""

    out: Optional[str] = opt(None, "folder for the evaluation (eval.json, eval_runs.jsonl) and, "
                                   "for a set made by another tool, the imported set (default: "
                                   "the run directory; SET.synthset beside an imported set)")
    set_index: int = opt(0, "which [images, labels] pair of an official .pt (one per experiment)")


@dataclass(frozen=True, kw_only=True)
class TrainCommand:
    out: Optional[str] = opt(None, "folder for eval.json and eval_runs.jsonl (resumable)")
    subset: Optional[int] = opt(None, "train on a class-balanced random subset of this many "
                                      "training images, drawn from --seed (small-data references, "
                                      "e.g. DP-SGD at the size of an attack pipeline's half)")

    def __post_init__(self) -> None:
        check(self.subset is None or self.subset >= 1, f"subset must be >= 1, got {self.subset}")


@dataclass(frozen=True, kw_only=True)
class StudyCommand:
    only: tuple[str, ...] = opt((), "comma-separated run names to run (default: all)")
    dry_run: bool = opt(False, "print the commands, run nothing")
    report_only: bool = opt(False, "write study.json and study.md from what is on disk (finished "
                                   "rows, and the runs so far of an evaluation under way); run "
                                   "nothing")


@dataclass(frozen=True, kw_only=True)
class ShowCommand:
    out: Optional[str] = opt(None, "PNG to write (default: RUN_DIR/grid.png)")
    max_per_class: int = opt(10, "images per class row")


@dataclass(frozen=True, kw_only=True)
class ExportCommand:
    format: str = opt("png", "png: an ImageFolder, one folder per class; dcbench: "
                             "torch.save({'data': [[images, labels]]})", choices=("png", "dcbench"))
    out: str = opt(help="folder (png) or .pt file (dcbench) to write")


@dataclass(frozen=True, kw_only=True)
class AttackCommand:
    out: Optional[str] = opt(None, "folder for the pipelines, lira.json and its figures "
                                   "(default: RUN_DIR/lira-KIND)")


@dataclass(frozen=True, kw_only=True)
class ReportCommand:
    out: str = opt(help="folder for report.html, report.md and the PNGs")
    title: str = opt("synthset report", "the report's title")


# The only CLI defaults that differ from their dataclass's, on purpose: the full-data
# reference trains 20 epochs once (the protocol's 1000 epochs x 5 runs are for small sets);
# evaluate and audit read a set's dataset from the set unless told. tests/test_cli.py holds
# every other flag to its field's default.
COMMAND_DEFAULTS = {"train": {"train.epochs": 20, "eval.runs": 1},
                    "evaluate": {"data.name": None}}


def _add(p, command: str, cls, prefix: str, *, title: Optional[str] = None,
         only: Optional[tuple[str, ...]] = None) -> None:
    """``add_options`` with the command's declared overrides (COMMAND_DEFAULTS)."""
    own = {k[len(prefix) + 1:]: v for k, v in COMMAND_DEFAULTS.get(command, {}).items()
           if k.startswith(prefix + ".")}
    add_options(p, cls, prefix, defaults=own, title=title, only=only)


def _compute(p, command: str, *, workers: bool = False) -> None:
    from .config import ComputeConfig
    _add(p, command, ComputeConfig, "compute", title="compute",
         only=("device", "workers") if workers else ("device",))


def _add_training(p, command: str) -> None:
    from .config import EvalConfig, TrainConfig
    _add(p, command, TrainConfig, "train", title="training protocol")
    _add(p, command, EvalConfig, "eval", title="runs")
    _compute(p, command, workers=True)


def add_distill_options(p, method: Optional[str]) -> None:
    """distill's flags; with ``method``, that method's own options too."""
    from .config import CoresetConfig, DataConfig, DistillConfig, EngineConfig
    from .methods import METHODS
    _add(p, "distill", DataConfig, "data", title="data")
    _add(p, "distill", DistillConfig, "", title="run")
    _add(p, "distill", DistillCommand, "cmd", title="run directory")
    _compute(p, "distill")
    _add(p, "distill", CoresetConfig, "coreset",
         title="feature space (herding, k-center, --init herding)")
    _add(p, "distill", EngineConfig, "engine", title="engine (learned methods: " + ", ".join(
        n for n, m in METHODS.items() if m.kind == "learned") + ")")
    p.epilog = "options of a method: synthset distill --method M --help"
    if method is not None:
        m = METHODS.get(method)
        _add(p, "distill", m.Options, "method", title=f"options of --method {m.name}")


def build_parser(method: Optional[str] = None) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="synthset", description="Dataset distillation and evaluation")
    sub = ap.add_subparsers(dest="command", required=True)
    for add in (_parser_datasets, _parser_methods, _parser_recipes, _parser_distill,
                _parser_evaluate, _parser_train, _parser_study, _parser_show, _parser_export,
                _parser_audit, _parser_attack, _parser_report, _parser_compare):
        add(sub, method)
    return ap


def _parser_datasets(sub, method: Optional[str]) -> None:
    from .config import DataConfig
    p = sub.add_parser("datasets", help="list datasets and the data root")
    _add(p, "datasets", DataConfig, "data", only=("root",))
    p.set_defaults(fn=cmd_datasets)


def _parser_methods(sub, method: Optional[str]) -> None:
    p = sub.add_parser("methods", help="list methods")
    p.set_defaults(fn=cmd_methods)


def _parser_recipes(sub, method: Optional[str]) -> None:
    p = sub.add_parser("recipes", help="list the shipped recipes (measured settings)")
    p.add_argument("name", nargs="?", default=None, help="show one recipe in full")
    p.set_defaults(fn=cmd_recipes)


def _parser_distill(sub, method: Optional[str]) -> None:
    p = sub.add_parser("distill", help="make a synthetic set")
    add_distill_options(p, method)
    p.set_defaults(fn=cmd_distill)


def _parser_evaluate(sub, method: Optional[str]) -> None:
    from .config import DataConfig
    p = sub.add_parser("evaluate", help="train fresh networks on a set, test on real data")
    p.add_argument("run_dir", metavar="SET",
                   help="a run directory, or a set made by another tool: an official .pt "
                        "({'data': [[images, labels]]}), a DC-Bench set folder, an ImageFolder "
                        "of PNGs or an .npz (give --dataset)")
    _add(p, "evaluate", DataConfig, "data", only=("name", "root", "image_size"),
         title="data (default: what the set was made from; name the dataset of a set made "
               "by another tool)")
    _add(p, "evaluate", EvaluateCommand, "cmd", title="output")
    _add_training(p, "evaluate")
    p.set_defaults(fn=cmd_evaluate)


def _parser_train(sub, method: Optional[str]) -> None:
    from .config import DataConfig
    p = sub.add_parser("train", help="full-data reference: train on the whole training set")
    _add(p, "train", DataConfig, "data", title="data")
    _add_training(p, "train")
    _add(p, "train", TrainCommand, "cmd", title="output")
    p.set_defaults(fn=cmd_train)


def _parser_study(sub, method: Optional[str]) -> None:
    p = sub.add_parser("study", help="run a study file (runs as synthset commands; resumable) "
                                     "and write OUT/study.json")
    p.add_argument("file", help="a study .toml (see synthset.study)")
    _add(p, "study", StudyCommand, "cmd")
    p.set_defaults(fn=cmd_study)


def _parser_show(sub, method: Optional[str]) -> None:
    p = sub.add_parser("show", help="write the image grid of a set")
    p.add_argument("run_dir", help="a run directory")
    _add(p, "show", ShowCommand, "cmd")
    p.set_defaults(fn=cmd_show)


def _parser_export(sub, method: Optional[str]) -> None:
    p = sub.add_parser("export", help="export a set as PNG folder or DC-Bench .pt")
    p.add_argument("run_dir", help="a run directory")
    _add(p, "export", ExportCommand, "cmd")
    p.set_defaults(fn=cmd_export)


def _parser_audit(sub, method: Optional[str]) -> None:
    from .audit import AuditConfig
    from .config import DataConfig
    p = sub.add_parser("audit", help="how close a set is to the real images it was made from")
    p.add_argument("run_dir", help="a run directory")
    _add(p, "audit", AuditConfig, "audit", title="audit")
    _add(p, "audit", DataConfig, "data", only=("root",),
         title="data (default: the root the set was made from)")
    _compute(p, "audit")
    p.set_defaults(fn=cmd_audit)


# the pipelines' training options the attack takes beside its own (a DP-SGD reference is
# tuned on the validation split with `synthset train --subset`, then attacked with these)
ATTACK_TRAINING = ("lr", "batch_size", "dp_delta", "dp_max_grad_norm")


def _parser_attack(sub, method: Optional[str]) -> None:
    from .config import DataConfig, TrainConfig
    from .lira import LiraConfig
    p = sub.add_parser("attack", help="membership inference at scale: LiRA over S shadow pipelines "
                                      "of a run's recipe, with canaries (resumable)")
    p.add_argument("run_dir", help="a run directory")
    _add(p, "attack", LiraConfig, "lira", title="attack")
    _add(p, "attack", DataConfig, "data", only=("root",),
         title="data (default: the root the set was made from)")
    _add(p, "attack", TrainConfig, "train", only=ATTACK_TRAINING,
         title="each pipeline's training (the protocol's unless given; epochs and DP-SGD's "
               "epsilon above)")
    _add(p, "attack", AttackCommand, "cmd", title="output")
    _compute(p, "attack", workers=True)
    p.set_defaults(fn=cmd_attack)


def _parser_report(sub, method: Optional[str]) -> None:
    p = sub.add_parser("report", help="HTML + Markdown report (tables, plots, grids) over run directories")
    p.add_argument("run_dirs", nargs="+", help="distill runs and/or `synthset train --out` folders")
    _add(p, "report", ReportCommand, "cmd")
    p.set_defaults(fn=cmd_report)


def _parser_compare(sub, method: Optional[str]) -> None:
    p = sub.add_parser("compare", help="methods side by side at each IPC, as text")
    p.add_argument("run_dirs", nargs="+", help="run directories (or evaluated foreign sets)")
    p.set_defaults(fn=cmd_compare)


def _method_of(argv: list[str]) -> Optional[str]:
    """The --method of a distill command line (its options join the parser)."""
    if not argv or argv[0] != "distill":
        return None
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--method", default=None)
    pre.add_argument("--recipe", default=None)
    known, _ = pre.parse_known_args(argv[1:])
    if known.method is None and known.recipe is not None:
        from .recipes import recipe
        try:
            known.method = recipe(known.recipe).distill.get("method")
        except ValueError:  # the command itself reports the unknown recipe
            return None
    if known.method is None:
        return None
    from .methods import METHODS
    try:
        return METHODS.canonical(known.method)
    except ValueError:  # the command itself reports the unknown name
        return None


def _sigterm_as_interrupt() -> Callable[[], Any]:
    """Make SIGTERM (``kill``, a job scheduler's stop) take the Ctrl-C path: distillation
    checkpoints, finished evaluation runs stay logged, and worker processes are terminated
    rather than orphaned. Returns a function that puts the previous handler back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    return lambda: signal.signal(signal.SIGTERM, previous)


# the commands that run under torchrun (synthset.distributed); the others need one process
DISTRIBUTED = ("distill", "evaluate", "train")


def _join_world(args) -> None:
    """Under torchrun: join the process group (gloo on CPU, NCCL on CUDA, each rank on the
    GPU of its local rank); ranks other than 0 print nothing (rank 0 speaks for the run)."""
    from . import distributed
    if not distributed.launched():
        return
    if args.command not in DISTRIBUTED:
        raise ValueError(f"{args.command} runs in one process; run it without torchrun "
                         f"(under torchrun: {', '.join(DISTRIBUTED)})")
    compute = _compute_config(args)
    if compute.workers > 1:
        raise ValueError(f"--workers {compute.workers} forks local processes, and under torchrun "
                         f"each rank is already one: drop --workers (the ranks share the runs)")
    import torch
    world = distributed.init(compute.device)
    if compute.device != "cpu" and torch.cuda.is_available():
        vars(args)["compute.device"] = f"cuda:{world.local_rank}"
    if not world.is_main:
        sys.stdout = open(os.devnull, "w")
        sys.stderr = _WithoutProgress(sys.stderr)


class _WithoutProgress:
    """A stream that drops progress-bar redraws (carriage returns) and keeps the rest
    (errors, warnings): what the ranks other than 0 show."""

    def __init__(self, stream) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        return len(text) if "\r" in text else self.stream.write(text)

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def main(argv: list[str] | None = None) -> int:
    from .atomic import WriteError
    from .data.base import DataError
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(_method_of(argv)).parse_args(argv)
    except ValueError as e:  # e.g. an unknown method named before --help
        print(f"synthset: error: {e}", file=sys.stderr)
        return 2
    restore = _sigterm_as_interrupt()
    try:
        if getattr(args, "recipe", None):
            apply_recipe(args, argv)
        _join_world(args)
        return args.fn(args)
    except (ValueError, DataError, FloatingPointError) as e:
        print(f"synthset {args.command}: error: {e}", file=sys.stderr)
        return 2
    except WriteError as e:  # a full disk, a file-size limit, a read-only folder
        print(f"synthset {args.command}: error: {e}", file=sys.stderr)
        return 74  # EX_IOERR
    except KeyboardInterrupt:
        print(f"\nsynthset {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        restore()
        from .distributed import shutdown
        shutdown()


if __name__ == "__main__":
    sys.exit(main())
