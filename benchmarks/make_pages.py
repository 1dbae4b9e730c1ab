"""Write docs/results/*.md from benchmarks/results/: every table is computed here from the
recorded JSON (run directories are read with synthset's own report loader), the prose around
it comes from the page templates in benchmarks/pages/.

    python benchmarks/make_pages.py            # rewrite docs/results/
    python benchmarks/make_pages.py --check    # exit 1 if a page differs from what it would be

A template line ``{{ name }}`` is replaced by the table function ``name`` below."""
from __future__ import annotations

import argparse
import difflib
import functools
import json
import re
import sys
from pathlib import Path
from typing import Callable, Optional

import numpy as np

REPO = Path(__file__).resolve().parent.parent
RES = REPO / "benchmarks" / "results"
PAGES = REPO / "benchmarks" / "pages"
DOCS = REPO / "docs" / "results"
TABLES: dict[str, Callable[[], str]] = {}


# Results written before runs recorded their CPU flags name the machine of their notes.
OLD_CPU = "2-core AMD EPYC (AVX2, no AVX-512/AMX; flags not recorded in the file)"


def table(fn: Callable[[], str]) -> Callable[[], str]:
    TABLES[fn.__name__] = fn
    return fn


# ---------------------------------------------------------------- reading results


def rel(p: Path) -> str:
    return str(p.relative_to(REPO))


def jsonl(name: str) -> list[dict]:
    return [json.loads(x) for x in (RES / name).read_text().splitlines() if x.strip()]


def measured(pattern: str) -> list[tuple[Path, dict]]:
    """The results files under benchmarks/results/ matching ``pattern``, read, in name order."""
    return [(f, json.loads(f.read_text())) for f in sorted(RES.glob(pattern))]


def not_measured(script: str) -> str:
    return f"*Not measured yet: run `python benchmarks/{script}`.*"


def js(name: str) -> dict:
    return json.loads((RES / name).read_text())


def machine(m) -> str:
    """The machine of a result, in words."""
    if isinstance(m, str):
        return m
    if not m:
        return OLD_CPU
    if m.get("cuda"):
        return f"one {m['cuda']}"
    cpu = m.get("cpu")
    if not cpu:
        return OLD_CPU
    flags = cpu.get("flags", [])
    missing = [f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f not in flags]
    return (f"{m.get('threads', '?')}-thread {cpu['model']} ({', '.join(flags)}"
            + (f"; no {', '.join(missing)}" if missing else "") + ")")


def pm(values, digits: int = 2) -> str:
    v = [x for x in values if x is not None]
    if not v:
        return "-"
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{np.mean(v):.{digits}f} ± {np.std(v):.{digits}f}"


def mins(s: Optional[float]) -> str:
    if s is None:
        return "-"
    return f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"


def tflop(x: Optional[float]) -> str:
    return "-" if not x else f"{x / 1e12:.1f} TFLOP"


class Run:
    """One run directory: its set's metadata and its evaluations by (model, epochs)."""

    def __init__(self, path: str):
        from synthset.report.runs import load_run
        self.path = RES / path
        self.rec = load_run(self.path)
        self.meta = self.rec.metadata

    def result(self, model: Optional[str] = None, epochs: Optional[int] = None):
        found = self.rec.by_epochs or {(m, v.epochs): v for m, v in self.rec.results.items()}
        opts = [(k, v) for k, v in found.items()
                if (model is None or k[0] == model) and (epochs is None or k[1] == epochs)]
        if not opts:
            raise KeyError(f"{self.path}: no evaluation of {model or 'any model'} at {epochs} epochs")
        return max(opts, key=lambda kv: (kv[0][1], len(kv[1].accuracy)))[1]

    def machine(self) -> str:
        ev = self.path / "eval.json"
        m = self.meta.get("machine") or (json.loads(ev.read_text()).get("machine") if ev.exists() else None)
        return machine(m)

    def distill(self) -> str:
        s = self.meta.get("distill_seconds")
        if s is None or self.rec.method in ("random",):
            return "-"
        its = self.meta.get("iterations")
        parts = [mins(s)] + ([f"{its} it"] if its is not None else [])
        if self.meta.get("distill_flops"):
            parts.append(tflop(self.meta["distill_flops"]))
        return ", ".join(parts)


def cells(res, runs: Optional[int] = None, auc: bool = False) -> list[str]:
    acc = res.accuracy[:runs]
    out = [pm(acc), pm(res.balanced[:runs])]
    if auc:
        out.append(pm(res.auc[:runs]) if res.auc else "-")
    return out


def count(runs) -> int:
    """A run count: results files hold either the count or the list of run accuracies."""
    return len(runs) if isinstance(runs, list) else int(runs)


def md(header: list[str], rows: list[list[str]]) -> str:
    """A table in Markdown, by the report's own table code (``synthset.report.tables.Table``)."""
    from synthset.report.tables import Table
    return Table("", header, [[str(c) for c in r] for r in rows]).markdown()


def caption(protocol: str, mach: str, source: str) -> str:
    return f"*Protocol: {protocol}. Machine: {mach}. Data: `{source}`.*\n\n"


def runs_table(rows: list[tuple], *, auc: bool = False, train_cost: bool = False) -> str:
    """rows: (label, run directory, model, epochs, runs) -> one line each with accuracy,
    balanced accuracy [, AUC], runs x epochs, distillation cost [, training FLOPs per run]."""
    header = ["set", "accuracy", "balanced acc"] + (["ROC-AUC"] if auc else []) + [
        "runs x epochs", "distillation"] + (["training FLOPs / run"] if train_cost else [])
    body, machines = [], set()
    for label, path, model, epochs, runs in rows:
        r = Run(path)
        res = r.result(model, epochs)
        n = len(res.accuracy[:runs])
        line = [label, *cells(res, runs, auc), f"{n} x {res.epochs}", r.distill()]
        if train_cost:
            fl = r.rec.flops.get(res.model, {}).get("train_per_image_step")
            line.append(tflop(fl * r.rec.n_images * res.epochs) if fl else "-")
        body.append(line)
        machines.add(r.machine())
    return md(header, body) + "\n\n" + f"*Machine: {'; '.join(sorted(machines))}. Run directories: " \
        + ", ".join(f"`{rel(RES / p)}`" for _, p, *_ in rows) + ".*"


# ---------------------------------------------------------------- MNIST


@table
def mnist_ipc1() -> str:
    return runs_table([
        ("random", "mnist_study/random-ipc1", "ConvNet", 1000, None),
        ("herding (trained-ConvNet features)", "mnist_study/herding-ipc1", "ConvNet", 1000, None),
        ("k-center (same features)", "mnist_study/kcenter-ipc1", "ConvNet", 1000, None),
        ("DM, 300 it, real batch 64, pixel-herding start", "mnist_study/dm-ipc1", "ConvNet", 1000, None),
        ("DataDAM, same settings, p 4", "mnist_study/datadam-ipc1", "ConvNet", 1000, None),
        ("DM, factor 2 (4 images of 14x14 per class), same settings", "dm_ipc1_f2", "ConvNet", 1000, None),
        ("DataDAM, factor 2, same settings", "datadam_ipc1_f2", "ConvNet", 1000, None),
        ("DataDAM, factor 2, `--lam 0.1 --lr-img 0.3`", "datadam_ipc1_f2_lam01", "ConvNet", 1000, None),
    ], train_cost=True)


@table
def mnist_ipc10_ipc50() -> str:
    rows = []
    for m in ("random", "herding", "kcenter", "dm", "datadam"):
        for ipc in (10, 50):
            path = f"mnist_study/{m}-ipc{ipc}"
            r = Run(path)
            epochs = 300 if (m, ipc) not in (("dm", 10), ("datadam", 10)) else None
            try:
                r.result("ConvNet", epochs)
            except KeyError:
                continue
            rows.append((f"{m} IPC {ipc}", path, "ConvNet", epochs, None))
    return runs_table(rows, train_cost=True)


@table
def mnist_crossarch() -> str:
    models = ("ConvNet", "ConvNetBN", "MLP", "LeNet", "AlexNet", "VGG11", "ResNet18")
    body = []
    for m in ("dm", "datadam"):
        r = Run(f"mnist_study/{m}-ipc10")
        body.append([m] + [pm(r.result(x, 200).accuracy) for x in models])
    return caption("2 runs x 200 epochs per cell", Run("mnist_study/dm-ipc10").machine(),
                   "benchmarks/results/mnist_study/{dm,datadam}-ipc10/eval_runs.jsonl") + \
        md(["IPC 10"] + list(models), body)


@table
def quickstart() -> str:
    d = js("quickstart/quickstart_cpu.json")
    body = [[f"`{s['command']}`", f"{s['seconds']:.0f} s"] for s in d["steps"]]
    body.append(["total (install excluded: it took " f"{d['install_seconds_not_timed']:.0f} s)",
                 f"**{d['total_seconds']:.0f} s**, printed {d['printed_accuracy']}%"])
    return caption("the recipe's evaluation budget, ConvNet, 1 run x 300 epochs", machine(d["machine"]),
                   "benchmarks/results/quickstart/") + f"Command: `{d['command']}` (commit {d['commit']})\n\n" \
        + md(["step", "wall-clock"], body)


# ---------------------------------------------------------------- DC / DSA


# ---------------------------------------------------------------- MHIST


S = "mhist64_study/"


@table
def mhist64_study() -> str:
    return runs_table([
        ("random IPC 1", S + "random-ipc1", None, None, None),
        ("herding IPC 1 (random-net features)", S + "herding-ipc1", None, None, None),
        ("k-center IPC 1 (same)", S + "kcenter-ipc1", None, None, None),
        ("DM IPC 1, 300 it", S + "dm-ipc1", None, None, None),
        ("DataDAM IPC 1, 300 it", S + "datadam-ipc1", None, None, None),
        ("**DM IPC 10**, 600 it", S + "dm-ipc10", None, 1000, None),
        ("**DataDAM IPC 10**, 600 it", S + "datadam-ipc10", None, None, None),
        ("DM IPC 50, 300 it", S + "dm-ipc50", None, None, None),
        ("DataDAM IPC 50, 300 it", S + "datadam-ipc50", None, None, None),
    ], auc=True, train_cost=True)


@table
def mhist64_factor2_ipc10() -> str:
    return runs_table([
        ("DM, plain (the 600-iteration set), re-evaluated", "mhist64_f2_ablation/dm-ipc10-plain-300ep", None, 300, None),
        ("factor-2 start: 40 random real 32 px images per class, 0 iterations", "mhist64_f2_ablation/dm-ipc10-f2-start", None, 300, None),
        ("**DM, factor 2**, 600 iterations", S + "dm-ipc10-f2", None, 300, None),
        ("DataDAM, factor 2, 600 iterations", S + "datadam-ipc10-f2", None, 300, None),
        ("DM, factor 2, the same set trained with `--dihedral`", S + "dm-ipc10-f2-d4", None, 300, None),
    ], auc=True, train_cost=True)


@table
def mhist64_factor2_ipc50() -> str:
    return runs_table([
        ("DM, plain, 300 iterations", S + "dm-ipc50", None, 300, None),
        ("**DM, factor 2**, 300 iterations, first 3 runs", S + "dm-ipc50-f2", None, 200, 3),
        ("the same set, 5 runs", S + "dm-ipc50-f2", None, 200, None),
        ("the same set with `--dihedral`, 5 runs", S + "dm-ipc50-f2-d4", None, 200, None),
        ("the same set with `--dihedral --tta`", S + "dm-ipc50-f2-d4-tta", None, 200, None),
        ("DM, factor 2, `--lr-img 5`", S + "dm-ipc50-f2-lr5", None, 200, None),
        ("DM, factor 2, trained at batch 128", S + "dm-ipc50-f2-b128", None, 200, None),
    ], auc=True, train_cost=True)


@table
def mhist64_full() -> str:
    rows = [("10 epochs, batch 256", S + "full"), ("10 epochs, batch 32", S + "full-batch32"),
            ("20 epochs, batch 32", S + "full-batch32-e20"), ("**100 epochs, batch 256** (the reference)", S + "full-e100"),
            ("10 epochs, batch 32, `--dihedral`", S + "full-batch32-d4"),
            ("10 epochs, batch 32, no augmentation", S + "full-batch32-noaug"),
            ("10 epochs, batch 32, `--dihedral`, no DSA", S + "full-batch32-d4only"),
            ("10 epochs, batch 32, lr 0.03", S + "full-batch32-lr0.03"),
            ("10 epochs, batch 32, lr 0.003", S + "full-batch32-lr0.003"),
            ("10 epochs, batch 32, `--tta` (run 0 only)", S + "full-batch32-tta"),
            ("128 px, ConvNetD5, 10 epochs, batch 32", "mhist128_study/full-batch32")]
    body, machines = [], set()
    for label, path in rows:
        r = Run(path)
        res = r.result()
        body.append([label, *cells(res, None, True), f"{len(res.accuracy)} x {res.epochs}",
                     mins(float(np.mean(res.train_seconds)))])
        machines.add(r.machine())
    return md(["full training set (2,175 images), ConvNetD4, DSA", "accuracy", "balanced acc", "ROC-AUC",
               "runs x epochs", "training time / run"], body) + \
        f"\n\n*Machine: {'; '.join(sorted(machines))}. Run directories under `benchmarks/results/mhist64_study/full*`.*"


@table
def mhist_large() -> str:
    return runs_table([
        ("128 px, ConvNetD5, DM, 200 it", "mhist128_study/dm-ipc10", None, None, None),
        ("128 px, ConvNetD5, DataDAM, 200 it", "mhist128_study/datadam-ipc10", None, None, None),
        ("224 px, ConvNetD7, DM, 50 it, real batch 16", "mhist224_study/dm-ipc10", None, None, None),
        ("224 px, ConvNetD7, DataDAM, 50 it, real batch 16", "mhist224_study/datadam-ipc10", None, None, None),
        ("64 px, DM, 200 it, network pool 10", "mhist64_netpool/dm-ipc10-pool10", None, None, None),
    ], auc=True, train_cost=True)


# ---------------------------------------------------------------- pages


def _pct_ci(r: dict, fpr: str) -> str:
    if not r[f"fpr_{fpr}_resolvable"]:
        return "-"
    lo, hi = r[f"tpr_at_{fpr}_fpr_ci"]
    return f"{100 * r[f'tpr_at_{fpr}_fpr']:.2f}% [{100 * lo:.2f}, {100 * hi:.2f}]"


def _attack_label(folder: Path, d: dict, *, short: bool = False) -> str:
    """What each pipeline of an attack trained on, from its config (``short``: DP-SGD rows
    named by their epsilon only, for a figure's legend)."""
    c, dist = d["config"], json.loads((folder / "config.json").read_text())["distill"]
    if c["kind"] == "full":
        dp = d.get("dp")
        if dp and short:
            return f"DP-SGD eps {dp['target_epsilon']:g}, all members"
        return (f"all members, {d['epochs']} epochs" + (
            f", DP-SGD eps {dp['target_epsilon']:g} (accountant {dp['epsilon']:.2f}, "
            f"noise {dp['noise_multiplier']:.2f}, {dp.get('precision', 'fp32')})" if dp else ""))
    if c["kind"] == "random":
        return f"random real, {d['set_images']} images"
    e, method = dist["engine"], dist["method"]
    if method in ("random", "herding", "kcenter"):
        feats = dist["coreset"]["features"]
        return f"{method} real, IPC {dist['ipc']}" + (f" ({feats})" if method != "random" else "")
    its = c.get("iterations") or e.get("iterations")
    opts = dist.get("options", {})
    experts = opts.get("experts", 0)
    # the mmd method's characteristic-function kernel is NCFM's objective, not an MMD
    name = "characteristic functions" if opts.get("kernel") == "cf" else method.upper()
    return (f"{name}, IPC {dist['ipc']}, {e['init']} start, {its} iterations"
            + (f", factor {e['factor']}" if e.get("factor", 1) > 1 else "")
            + (f", {experts} experts" if experts else ""))


def _attack_table(files: list[tuple[Path, dict]]) -> str:
    body, machines = [], set()
    for path, d in files:
        c, on, off, k = d["config"], d["online"], d["offline"], d.get("canaries")
        sec = d.get("seconds_median", d["seconds_per_pipeline"])
        body.append([_attack_label(path.parent, d), f"{d['test_accuracy']:.2f}",
                     f"{c['shadows']} x {c['pool']} ({on['non_members']:,})",
                     d.get("variances", "pooled" if c["fixed_variance"] else "per-example"),
                     f"{on['auc']:.3f} / {off['auc']:.3f}", f"{100 * on['tpr_at_0.01_fpr']:.2f}%",
                     _pct_ci(on, "0.001"), _pct_ci(off, "0.001"), _pct_ci(on, "0.0001"),
                     f"{100 * k['canaries_flagged']:.0f}% / {k['canary_auc']:.2f}" if k else "-",
                     f"{k['nn_distance_in']:.1f} / {k['nn_distance_out']:.1f}" if k else "-",
                     f"{sec:.0f} s ({c['shadows'] * sec / 3600:.1f} h)", f"{int(3600 // sec)}"])
        machines.add(machine(d["machine"]))
    return (caption("LiRA (online unless named offline) over S pipelines, each the target once against the other S - 1; "
                    "each pool image is in half of them; non-member (target, image) pairs in "
                    "brackets; intervals: bootstrap over images; test accuracy: the pipelines' "
                    "networks, mean; canaries: 20 relabelled pool images, the share of "
                    "in-canaries flagged at the threshold of 0.1% FPR on ordinary non-members "
                    "and their AUC in against out; cost: median seconds per pipeline (S x median: "
                    "the logged total also counts time pipelines spent paused while other "
                    "benchmarks ran)",
                    "; ".join(sorted(machines)), f"benchmarks/results/privacy/{files[0][0].parent.name}/"
                    "lira.json and the other rows' folders")
            + md(["each pipeline trains on", "test acc. (%)", "S x pool (non-member pairs)",
                  "variances", "AUC online / offline", "TPR @ 1% FPR", "TPR @ 0.1% FPR [95% CI]",
                  "offline: TPR @ 0.1% FPR", "TPR @ 0.01% FPR [95% CI]", "canaries flagged / AUC",
                  "canary to nearest set image, in / out", "per pipeline, median (total)",
                  "pipelines in an hour"], body))


def _attacks(dataset: str) -> list[tuple[Path, dict]]:
    """The attack folders under benchmarks/results/privacy/ on ``dataset``."""
    return [(p, d) for p, d in measured("privacy/*/lira.json")
            if json.loads((p.parent / "config.json").read_text())["data"]["name"] == dataset]


def _attacks_s32() -> list[tuple[Path, dict]]:
    return [(p, d) for p, d in _attacks("mnist") if d["config"]["shadows"] >= 32]


PRIVACY_FIGURE = RES / "privacy" / "overview_s32.png"


def privacy_figure() -> None:
    """The S >= 32 rows' ROC curves and TPR at 0.1% FPR against accuracy in one figure
    (written by ``main``, not compared by ``--check``: a PNG's bytes depend on matplotlib)."""
    from synthset.report.plots import privacy_overview
    rows = [{"label": _attack_label(p.parent, d, short=True), "accuracy": d["test_accuracy"],
             "tpr": d["online"]["tpr_at_0.001_fpr"], "ci": d["online"]["tpr_at_0.001_fpr_ci"],
             "roc": d["roc"]["online"], "series": "DP-SGD" if d.get("dp") else None}
            for p, d in _attacks_s32() if "roc" in d]
    if rows:
        privacy_overview(rows, PRIVACY_FIGURE)


@table
def privacy_attack() -> str:
    """`synthset attack` at S >= 32: one row per attack folder under benchmarks/results/privacy/."""
    files = _attacks_s32()
    if not files:
        return ("*Not measured yet: `synthset attack RUN_DIR --shadows 32 --pool 2000 --canaries "
                "20 --out benchmarks/results/privacy/NAME` writes a row here.*")
    return _attack_table(files) + (
        f"\n\n![ROC curves, and TPR at 0.1% FPR against test accuracy](../../{rel(PRIVACY_FIGURE)})"
        f"\n\n*Figure: `{rel(PRIVACY_FIGURE)}`, drawn by `python benchmarks/make_pages.py` from the "
        "rows above (online LiRA; DP-SGD rows joined by a dotted line).*")


@table
def privacy_dp_val() -> str:
    """DP-SGD's settings on the validation split at a pipeline's size (`synthset train --subset`)."""
    files = measured("privacy/dp-val/*/eval-val.json")
    if not files:
        return "*Not measured yet.*"
    body, machines = [], set()
    for path, d in sorted(files, key=lambda f: (-f[1]["config"]["train"]["dp_epsilon"],
                                                 f[1]["models"]["ConvNet"]["epochs"],
                                                 f[1]["config"]["train"]["lr"])):
        m, t = d["models"]["ConvNet"], d["config"]["train"]
        body.append([f"{t['dp_epsilon']:g}", str(m["epochs"]), f"{t['lr']:g}", str(t["batch_size"]),
                     f"{m['mean']:.2f}", f"{max(m['dp']['epsilon']):.2f}",
                     f"{m['dp']['noise_multiplier']:.2f}", m["dp"].get("precision", "fp32"),
                     f"{sum(m['train_seconds']) / len(m['train_seconds']):.0f} s"])
        machines.add(machine(d["machine"]))
    t0 = files[0][1]["config"]["train"]
    return (caption(f"DP-SGD (Opacus, delta {t0['dp_delta']:g}, clipping norm {t0['dp_max_grad_norm']:g}, "
                    f"momentum {t0['momentum']:g}) on a class-balanced "
                    f"subset of {files[0][1]['config']['subset']} training images (the validation "
                    "images held out), 1 run, scored on the validation split",
                    "; ".join(sorted(machines)), "benchmarks/results/privacy/dp-val/*/eval-val.json")
            + md(["target epsilon", "epochs", "lr", "batch", "val acc. (%)", "accountant's epsilon",
                  "noise multiplier", "precision", "training"], body))


@table
def privacy_attack_first() -> str:
    """The first, small attacks (S < 32)."""
    files = [(p, d) for p, d in _attacks("mnist") if d["config"]["shadows"] < 32]
    return _attack_table(files) if files else "*None.*"


@table
def privacy_attack_mhist() -> str:
    """`synthset attack` on MHIST (64 px, ConvNetD4)."""
    files = _attacks("mhist")
    if not files:
        return ("*Not measured yet: `synthset attack RUN_DIR --shadows 16 --pool 2000 --canaries "
                "20 --out benchmarks/results/privacy/mhist64-NAME` writes a row here.*")
    return _attack_table(files)


STARTS = RES / "privacy" / "starts.json"


@table
def privacy_starts() -> str:
    """Each attack's TPR at 0.1% FPR split between the members its sets started from (or
    show as they are) and the other members: from lira.json where the pipelines kept their
    starts, else from benchmarks/lira_starts.py's replay."""
    replayed = json.loads(STARTS.read_text())["rows"] if STARTS.exists() else {}
    body = []
    rows = [("MNIST", p, d) for p, d in _attacks("mnist")] + [("MHIST 64 px", p, d) for p, d in _attacks("mhist")]
    for data, p, d in sorted(rows, key=lambda r: (r[0] != "MNIST", r[1].parent.name)):
        split = d.get("starts") or replayed.get(p.parent.name)
        if split is None or d["config"]["shadows"] < 16:
            continue
        on, off = split["online"], split["offline"]
        body.append([f"{data}: {_attack_label(p.parent, d)}",
                     f"{on['start_members']:,} / {on['other_members']:,}",
                     f"{100 * on['start_flagged']:.2f}% / {100 * off['start_flagged']:.2f}%",
                     f"{100 * on['other_flagged']:.2f}% / {100 * off['other_flagged']:.2f}%"
                     if on["other_flagged"] is not None else "-",
                     _pct_ci(d["online"], "0.001"),
                     "lira.json" if d.get("starts") else "replayed"])
    if not body:
        return ("*Not measured yet: `python benchmarks/lira_starts.py FOLDERS --out "
                f"{rel(STARTS)}` or an attack whose pipelines keep their starts.*")
    return (caption("member (target, image) pairs over the S pipelines: those whose image the "
                    "target's set started from or shows as it is (a random subset, a coreset's "
                    "picks, a real or herding start; a noise start and the full data have no such "
                    "split), against the other members; TPR at the threshold that keeps 0.1% of "
                    "all non-members, online / offline LiRA; source: the pipelines' own record "
                    "(lira.json) or the starts made again at zero iterations by "
                    "`benchmarks/lira_starts.py`", "the attacks' machines, above",
                    f"{rel(STARTS)} and each folder's lira.json")
            + md(["each pipeline trains on", "pairs: starts / other members",
                  "TPR @ 0.1% FPR, starts (online / offline)",
                  "TPR @ 0.1% FPR, other members (online / offline)",
                  "all members, online [95% CI]", "source"], body))


def _scaling():
    path = RES / "distributed" / "scaling_cpu.json"
    return json.loads(path.read_text()) if path.exists() else None


@table
def distributed_scaling() -> str:
    d = _scaling()
    if d is None:
        return "*Not measured yet: `benchmarks/results/distributed/scaling_cpu.json`.*"
    h = d["header"]
    out = []
    if "dm" in d:
        dm = d["dm"]
        rows = []
        for name in ("1 process", "torchrun"):
            r = dm[name]
            c = r.get("communication") or {}
            its = max(1, c.get("all_reduces", 0))
            rows.append([name, f"{r['ranks']} x {r['threads_per_rank']}", f"{r['median_iteration_seconds']:.2f}",
                         f"{r['loop_seconds']:.0f}", f"{r['wall_seconds']:.0f}",
                         f"{c['bytes'] / its / 1024:.0f} KB" if c else "-",
                         f"{1000 * c['seconds'] / its:.1f} ms" if c else "-"])
        out.append("DM, MNIST, IPC 10, real batch 256 per class, ConvNet, DSA, `--compile`, precision "
                   f"auto (chose {dm['1 process']['precision']['real']}): speed-up per iteration "
                   f"**{dm['speedup_per_iteration']:.2f}x**; the two sets differ by at most "
                   f"{dm['max_abs_set_difference']:.2g} (bf16 arithmetic, so more than the fp32 "
                   "tests' figures).\n\n" + md(
                       ["layout", "ranks x threads", "s / iteration (median)", "loop s", "wall s",
                        "all-reduce / iteration", "time in all-reduce / iteration (rank 0)"], rows))
    if "eval" in d:
        ev = d["eval"]
        rows = [[name, r["ranks"], f"{r['wall_seconds']:.0f}", " / ".join(f"{x:.2f}" for x in r["runs"])]
                for name, r in ev.items() if isinstance(r, dict)]
        out.append(f"Evaluation of one random IPC 10 set, {len(ev['1 process']['runs'])} runs, "
                   f"`--compile`: torchrun {ev['speedup_torchrun']:.2f}x, `--workers` "
                   f"{ev['speedup_workers']:.2f}x the one process's wall-clock; per-run accuracies of "
                   f"torchrun equal to the one process's: {ev['torchrun_runs_equal_one_process']} "
                   "(one process ran 2 threads per run, each rank 1; the tests compare at equal "
                   "threads, where they are equal).\n\n" + md(
                       ["layout", "ranks", "wall s", "per-run accuracy (%)"], rows))
    return caption("one after another, nothing else running", machine(h["machine"]),
                   "benchmarks/results/distributed/scaling_cpu.json") + f"Command: `{h['command']}`\n\n" + \
        "\n\n".join(out)


# Scripts retired once their results were recorded (their tables are frozen into the page
# templates), each with the commit that last holds it.
RETIRED = {**dict.fromkeys(("compile_ab.py", "dm_mnist.py", "dm_proxy.py", "ema_proxy.py",
                            "embed_speed.py", "eval_speed.py", "eval_workers.sh", "foreign_sets.py",
                            "gm_study.py", "mhist_speed.py", "netpool_speed.py",
                            "protocol_tables.py", "set_drift.py", "syn_speed.py"), "6826104"),
           **dict.fromkeys(("precision_study.py", "mnist_study.sh", "mhist_study.sh",
                            "audit_study.py"), "a6a645e")}


@table
def official_speed() -> str:
    """synthset beside the official main_DM.py, one block per machine (benchmarks/official_speed.py)."""
    files = measured("official_speed/*.json")
    if not files:
        return not_measured("official_speed.py") + " (see its docstring)"
    out = []
    for f, d in files:
        body = []
        for heap in dict.fromkeys(r["allocator"] for r in d["runs"]):
            rs = [r for r in d["runs"] if r["allocator"] == heap]
            ratios = [r["speedup"] for r in rs]
            body.append([heap, str(len(rs)),
                         f"{np.median([r['official']['seconds_per_iteration'] for r in rs]):.2f}",
                         f"{np.median([r['synthset']['seconds_per_iteration'] for r in rs]):.2f}",
                         f"**{np.median(ratios):.2f}x** ({min(ratios):.2f}-{max(ratios):.2f})"])
        r0 = d["runs"][0]
        out.append(caption(
            f"MNIST IPC {d['ipc']}, the official DM settings (real batch 256, random real start, DSA, "
            f"ConvNet); median seconds per iteration of each run, then the median and range over "
            f"the pairs, official and synthset alternating", machine(d["machine"]), rel(f))
            + f"Command: `{d['command']}` (official commit {d['official_commit'][:7]}). Official: "
            f"`python {r0['official']['command']}`; synthset: `{r0['synthset']['command']}` "
            f"(precision: {', '.join(f'{k} pass {v}' for k, v in r0['synthset']['precision'].items())}). "
            f"Changes around the official code: "
            + "; ".join(d["changes"]) + "." + (f" {d['corrections']}" if d.get("corrections") else "")
            + "\n\n"
            + md(["allocator", "pairs", "official s / iteration", "synthset s / iteration",
                  "speed-up (range)"], body))
    return "\n\n".join(out)


@table
def audit_speed() -> str:
    """benchmarks/audit_speed.py: the memorisation audit's wall-clock, cold and cached."""
    files = measured("audit/speed_cpu.json")
    if not files:
        return not_measured("audit_speed.py")
    path, d = files[0]
    return (caption(f"`synthset audit` of `{d['set']}` (pixel and feature space, 2,000 held-out "
                    f"test images, drift from the remade start), nothing else running",
                    machine(d["machine"]), rel(path)) + f"Command: `{d['command']}`\n\n"
            + md(["cache", "wall-clock"],
                 [["empty (the feature network is trained first, then cached)",
                   mins(d["seconds_empty_cache"])],
                  ["the feature network cached", mins(d["seconds_cached_feature_net"])]])
            + (f"\n\nThe feature network's training: `{d['feature_net_training']}`."
               if d.get("feature_net_training") else ""))


@table
def faults() -> str:
    """benchmarks/fault_table.py: each fault, how often injected, what the user saw."""
    files = measured("faults.json")
    if not files:
        return not_measured("fault_table.py")
    path, d = files[0]
    body = []
    for r in d["rows"]:
        landed = (f"{r['landed_while_running']} while running" if "landed_while_running" in r
                  else f"{r['rounds_all_succeeded']} rounds all succeeded" if "rounds_all_succeeded" in r
                  else f"{sum(e == 74 for e in r['exits'])} stopped a run" if "exits" in r
                  else "refused" if r.get("second_exit") else "")
        detail = []
        if "checkpoint_iteration_after_each_kill" in r:
            detail.append("checkpoint after each kill at iteration "
                          + ", ".join(map(str, r["checkpoint_iteration_after_each_kill"])))
            detail.append(f"{r['temporary_files_after_kills']} temporary files left by the kills "
                          f"in all, {r['temporary_files_at_the_end']} after the final run (a start "
                          f"clears them)")
        if "last_checkpoint_readable" in r:
            detail.append(f"exit {', '.join(map(str, r['exits']))}; last checkpoint readable "
                          f"{r['last_checkpoint_readable']}/{r['injected']}")
        if "autotune_entries_per_round" in r:
            detail.append(f"autotune entries per round {r['autotune_entries_per_round']}; "
                          f"{r['torn_or_temporary_files']} torn or temporary files")
        if "second_exit" in r:
            detail.append(f"second exit {r['second_exit']}, first exit {r['first_exit']}")
        eq = r.get("final_equals_uninterrupted")
        body.append([r["fault"], str(r["injected"]), landed, "; ".join(detail),
                     f"`{r['user_saw']}`" if r.get("user_saw") else "-",
                     "-" if eq is None else ("yes" if eq else "**no**")])
    return (caption("DM, IPC 2, the folder dataset's fake images, a checkpoint after every "
                    "iteration (200), fp32", machine(d["machine"]), rel(path))
            + f"Command: `{d['command']}`"
            + (f"; the real-disk rows: `{d['disk_command']}`" if "disk_command" in d else "") + "\n\n"
            + md(["fault", "injected", "landed", "what was left", "what the user saw (last line)",
                  "final set = uninterrupted"], body))


@table
def resume_divergence() -> str:
    """benchmarks/resume_divergence.py: per run length, 2 ranks and cut+resume vs 1 process."""
    files = measured("resume_divergence/*.json")
    if not files:
        return not_measured("resume_divergence.py")
    out = []
    for f, d in files:
        out.append(caption("DM, IPC 2, tiny fake MNIST, fp32, one thread per process; largest "
                           "pixel difference to the 1-process run of the same length",
                           machine(d["machine"]), rel(f)) + f"Command: `{d['command']}`\n\n"
                   + md(["iterations", "2 ranks throughout", "cut on 2 ranks after 1, resumed on 1"],
                        [[str(r["iterations"]), f"{r['two_ranks']:.1e}", f"{r['cut_resume']:.1e}"]
                         for r in d["rows"]]))
        if d.get("trace"):  # --trace: the ReLUs whose sign the 2-rank checkpoint flips
            out.append("The ReLU inputs that change sign between the resume from the 1-process "
                       "checkpoint and the resume from the 2-rank one, in the last iteration of each "
                       "length (batched passes):\n\n" + md(
                           ["iteration", "ReLU (pass: shape)", "sign flips", "largest input magnitude flipped",
                            "set difference after it"],
                           [[str(t["iteration"]), "; ".join(f"{f['pass']}: {'x'.join(map(str, f['shape']))}"
                                                           for f in t["relu_flips"]) or "none",
                             str(sum(f["sign_flips"] for f in t["relu_flips"])),
                             f"{max(f['largest_abs_input_flipped'] for f in t['relu_flips']):.1e}"
                             if t["relu_flips"] else "-", f"{t['gap_after']:.1e}"] for t in d["trace"]]))
    return "\n\n".join(out)


@table
def bad_inputs() -> str:
    """benchmarks/bad_inputs.sh's transcript: each bad input and the message it gets."""
    text = (RES / "bad_inputs.txt").read_text()
    head = json.loads(text.splitlines()[0])
    body = []
    for block in text.split("\n## ")[1:]:
        title, *lines = block.strip().splitlines()
        said = [ln for ln in lines if ln and not ln.startswith(("$ ", "(exit"))]
        code = [ln for ln in lines if ln.startswith("(exit")]
        body.append([title, " / ".join(f"`{s}`".replace("|", "\\|") for s in said) or "-",
                     code[-1].strip("()") if code else "-"])
    return (caption("each command run on a broken copy of the data or set", machine(head["machine"]),
                    "benchmarks/results/bad_inputs.txt")
            + f"Command: `{head['command']}`\n\n" + md(["bad input", "what the user sees", "exit"], body))


def render(template: Path) -> str:
    out = []
    for line in template.read_text().splitlines():
        m = re.fullmatch(r"\{\{\s*(\w+)\s*\}\}", line.strip())
        out.append(TABLES[m.group(1)]() if m else line)
    named = [f"`benchmarks/{s}` (`git show {c}:benchmarks/{s}`)" for s, c in RETIRED.items()
             if f"benchmarks/{s}" in "\n".join(out)]
    if named:
        out += ["", f"*Retired scripts, which made results shown here and were retired once "
                f"those were recorded: {', '.join(named)}.*"]
    head = (f"<!-- generated by `python benchmarks/make_pages.py` from {rel(template)} and "
            f"benchmarks/results/; edit those, not this file -->\n")
    return head + "\n".join(out).rstrip() + "\n"


def _study(name: str) -> str:
    """A study's table, as ``synthset study`` renders it (``synthset.study.table``); a note
    where the study has not written its results yet."""
    from synthset.study import table as study_table
    if not (RES / name).exists():
        return f"*Not measured yet: `synthset study` writes `benchmarks/results/{name}`.*"
    return study_table(js(name)).markdown()


# Pages' tables that are a study's own table, as `synthset study` writes it: template name
# -> the study's results file under benchmarks/results/.
STUDY_TABLES = {
    "gradient_matching": "gm_study/study.json",
    "ingredients_val": "accuracy/val/study.json",
    "mhist64_val_cpu": "accuracy/mhist64-val-cpu/study.json",
    "mhist64_ipc50_val_cpu": "accuracy/mhist64-ipc50-val-cpu/study.json",
    "mhist64_final_cpu": "accuracy/mhist64-test-cpu/study.json",
    "mnist_final": "accuracy/test/study.json",
    "mnist_10min_val": "accuracy/val-10min/study.json",
    "ipc10_round2_val": "accuracy/val-round2/study.json",
}
TABLES.update({name: functools.partial(_study, path) for name, path in STUDY_TABLES.items()})


@table
def mnist_ipc10_crossarch() -> str:
    """The IPC 10 winners and DM factor 2 (same budget, no experts) in other networks, from
    the rows' run logs (eval_runs.jsonl), so finished runs show while the rest still runs;
    each winner's difference to DM factor 2 below them."""
    folders = {"mnist-ipc10-cf (cf, 3 experts)": ("mnist-ipc10-cf-xarch", "mnist-ipc10-cf-resnet18"),
               "mnist-ipc10 (mean, 3 experts)": ("mnist-ipc10-xarch", "mnist-ipc10-resnet18"),
               "dm-f2-ipc10 (no experts)": ("dm-f2-ipc10-xarch", "dm-f2-ipc10-resnet18")}
    models = ("ConvNet", "LeNet", "AlexNet", "VGG11", "ResNet18")
    found, protocols = {}, set()
    for label, names in folders.items():
        runs: dict[str, list[float]] = {}
        for name in names:
            path = RES / "accuracy" / "test" / name / "eval_runs.jsonl"
            for r in (jsonl(str(path.relative_to(RES))) if path.exists() else []):
                runs.setdefault(r["model"], []).append(r["accuracy"])
                protocols.add((r["model"], r["epochs"]))
        found[label] = runs
    body = [[label] + [f"{pm(got[m])} ({len(got[m])})" if m in got else "not yet run" for m in models]
            for label, got in found.items()]
    *winners, (ref_label, ref) = found.items()
    for label, got in winners:
        body.append([f"{label.split()[0]} - {ref_label.split()[0]}"] + [
            f"{np.mean(got[m]) - np.mean(ref[m]):+.2f}" if m in got and m in ref else "-"
            for m in models])
    epochs = ", ".join(sorted({f"{e}" for _, e in protocols})) or "-"
    return caption(f"{epochs} epochs, final epoch, test split; the run count in brackets (2 "
                   f"planned per network, 1 for ResNet18)", machine(js("accuracy/test/study.json")["machine"]),
                   "benchmarks/results/accuracy/test/*-xarch/, *-resnet18/ eval_runs.jsonl") + md(
        ["IPC 10 set"] + list(models), body)


@table
def final_audits() -> str:
    """The memorisation audit of each final (test-split) set that has one, one row per set
    and space."""
    rows, notes = [], []
    for path, a in measured("accuracy/test/*/audit.json"):
        name = path.parent.name
        m = a["memorisation"]
        rows += [[f"`{name}`", space, f"{100 * m[space]['near_copy_fraction']:.1f}%",
                  f"{m[space]['synthetic_to_train']['median']:.2f}",
                  f"{m[space]['held_out_to_train']['median']:.2f}", f"{m[space]['ratio_of_medians']:.2f}"]
                 for space in ("pixel", "feature") if space in m]
        notes.append(f"`{name}`: median SSIM to the nearest training image "
                     f"{m['ssim_to_nearest']['median']:.3f}, moved "
                     f"{100 * m['drift_from_start']['relative_rms']:.1f}% of its RMS from its start, "
                     f"{a['n_synthetic']} decoded images against {a['n_train']} training images.")
    return md(["set", "space", "near copies", "median nearest distance (set)",
               "median nearest distance (held-out test images)", "ratio"], rows) + "\n\n" + " ".join(notes)


def pages() -> dict[Path, str]:
    from synthset.clidoc import cli_reference
    out = {DOCS / t.name: render(t) for t in sorted(PAGES.glob("*.md"))}
    out[REPO / "docs" / "cli.md"] = cli_reference()  # synthset.clidoc
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description="write docs/results/ from benchmarks/results/")
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 on a difference")
    args = ap.parse_args()
    stale = []
    for path, text in pages().items():
        old = path.read_text() if path.exists() else ""
        if old != text:
            stale.append(path)
            if args.check:
                sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), text.splitlines(True),
                                                           str(path), "regenerated", n=1))
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    if not args.check:
        privacy_figure()
    if args.check and stale:
        print(f"\nstale: {', '.join(map(rel, stale))}; run python benchmarks/make_pages.py")
        return 1
    print("up to date" if not stale else f"wrote {', '.join(map(rel, stale))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
