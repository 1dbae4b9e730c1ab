"""Reports over run directories: accuracy beside the papers, cross-architecture matrices, the
cost of distilling and of training on each set, the distillation curves and image grids, as
one self-contained HTML page and its Markdown twin (``synthset report``) or as text tables
(``synthset compare``).

A run directory is what ``synthset distill`` writes (synthetic.json, grid.png, checkpoint.json
with the loss history, eval_runs.jsonl after ``synthset evaluate``, log.jsonl with
``--eval-every``) or what ``synthset train --out`` writes for the full-data reference
(eval.json only)."""
from __future__ import annotations

import base64
import html
import json
import math
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np

from .data.base import DatasetInfo

# Published accuracies (%, ConvNet) that every table sits beside (DESIGN.md section 4).
PAPER = {
    "mnist": {
        "random": ({1: 64.9, 10: 95.1, 50: 97.9}, "DC paper, Table 1"),
        "herding": ({1: 89.2, 10: 93.7, 50: 94.8}, "DC paper, Table 1"),
        "kcenter": ({1: 89.3, 10: 84.4, 50: 97.4}, "DC paper, Table 1"),
        "dm": ({1: 89.7, 10: 97.5, 50: 98.6}, "DM paper, Table 1"),
        "full": (99.6, "DM paper"),
    },
}
# Majority-class test accuracy where the classes are imbalanced (MHIST: 617 HP of 977).
MAJORITY = {"mhist": 100 * 617 / 977}
METHOD_ORDER = ("random", "herding", "kcenter", "dm", "datadam")


@dataclass
class ModelResult:
    """The evaluation runs of one model on one set (one training configuration)."""

    model: str
    accuracy: list[float]
    balanced: list[float]
    auc: Optional[list[float]]
    epochs: int
    train_seconds: list[float]
    tta: bool = False  # scored with 8-view test-time augmentation (its runs carry single_view)

    @staticmethod
    def stat(v: Optional[list[float]]) -> tuple[float, float]:
        """Mean and population std, as the field reports."""
        return (float(np.mean(v)), float(np.std(v))) if v else (math.nan, math.nan)

    def cell(self) -> str:
        m, s = self.stat(self.accuracy)
        return f"{m:.2f} ± {s:.2f}"


class FlopsPoint(NamedTuple):
    """One set on the accuracy-vs-FLOPs plot. Points of one ``series`` are joined by a line
    (e.g. DM at IPC 1, 10, 50); sets that differ in options (factor, learning rate) are
    separate series, coloured by ``method``."""
    series: str
    method: str
    x_label: str  # names the x position on the top axis, e.g. "IPC 10"
    flops: float
    mean: float
    std: float


@dataclass
class RunRecord:
    path: Path
    kind: str  # "synthetic" or "full"
    dataset: str
    info: Optional[DatasetInfo]
    method: str
    ipc: Optional[int]
    n_images: int  # images the evaluation networks were trained on
    results: dict[str, ModelResult]  # per model: the longest evaluation
    by_epochs: dict[tuple[str, int], ModelResult] = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    curve: Optional[tuple[list[float], list[float]]] = None  # (loss, elapsed seconds)
    eval_log: list[dict] = field(default_factory=list)
    factor: int = 1  # multi-formation: n_images counts the factor^2 x ipc decoded images

    @property
    def label(self) -> str:
        if self.kind == "full":
            return "full data"
        return _with_factor(f"{self.method} IPC {self.ipc}", self.factor)

    @property
    def grid(self) -> Optional[Path]:
        p = self.path / "grid.png"
        return p if p.exists() else None


def _without_ipc(dir_name: str, ipc: int) -> str:
    """A run directory's name with its IPC taken out ("dm-ipc50-f2-d4" -> "dm-ipc-f2-d4"),
    so the sets of one study at different IPCs can share a table row."""
    return re.sub(rf"(?i)(ipc[-_]?){ipc}(?!\d)", r"\1", dir_name)


def _crowded(sets: list[RunRecord]) -> set[tuple[str, int]]:
    """The (method, factor) groups with two or more sets at one IPC (e.g. two budgets): their
    table rows and plot lines are split by directory family (``_without_ipc``) and named."""
    n = Counter((r.method, r.factor, r.ipc) for r in sets)
    return {(m, f) for (m, f, _), k in n.items() if k > 1}


def _with_factor(name: str, factor: int) -> str:
    """A multi-formation set's name says so: it is not the paper's plain set."""
    return name + (f" (factor {factor})" if factor > 1 else "")


def _results_from_runs(lines: list[dict]) -> dict[tuple[str, int], ModelResult]:
    """Per (model, epochs), the training configuration with the most runs."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in lines:
        groups.setdefault((r["model"], r.get("config_key", "")), []).append(r)
    best: dict[tuple[str, int], list[dict]] = {}
    for (model, _), runs in groups.items():
        dedup = sorted({r["run"]: r for r in runs}.values(), key=lambda r: r["run"])
        key = (model, dedup[0]["epochs"])
        if key not in best or len(dedup) > len(best[key]):
            best[key] = dedup
    out = {}
    for key, runs in best.items():
        aucs = [r["auc"] for r in runs]
        out[key] = ModelResult(model=key[0], accuracy=[r["accuracy"] for r in runs],
                               balanced=[r["balanced_accuracy"] for r in runs],
                               auc=None if any(a is None for a in aucs) else aucs,
                               epochs=key[1], train_seconds=[r["train_seconds"] for r in runs],
                               tta=all(r.get("single_view") for r in runs))
    return out


def _best_per_model(by_epochs: dict[tuple[str, int], ModelResult]) -> dict[str, ModelResult]:
    """Per model, the evaluation with the most epochs, then the most runs (a set evaluated
    first with a short protocol and then the full one reports the full one)."""
    out: dict[str, ModelResult] = {}
    for (model, epochs), res in by_epochs.items():
        if model not in out or (epochs, len(res.accuracy)) > (out[model].epochs, len(out[model].accuracy)):
            out[model] = res
    return out


def _results_from_eval_json(d: dict) -> dict[str, ModelResult]:
    out = {}
    for model, v in d["models"].items():
        auc = v.get("auc")
        out[model] = ModelResult(model=model, accuracy=list(v["runs"]),
                                 balanced=list(v["balanced_accuracy"]["runs"]),
                                 auc=list(auc["runs"]) if auc else None, epochs=v["epochs"],
                                 train_seconds=list(v["train_seconds"]), tta="single_view" in v)
    return out


def _read_jsonl(path: Path) -> list[dict]:
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by an interruption
    return out


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); restore it from the run or rerun "
                         f"the command that wrote it") from None


def load_run(path: str | Path) -> RunRecord:
    """Read a run directory (see the module docstring)."""
    path = Path(path)
    syn, ev = path / "synthetic.json", path / "eval.json"
    if syn.exists():
        d = _read_json(syn)
        meta = d.get("metadata", {})
        info = DatasetInfo.from_dict(d["dataset"])
        runs = _read_jsonl(path / "eval_runs.jsonl")
        if runs:
            by_epochs = _results_from_runs(runs)
            results = _best_per_model(by_epochs)
        else:
            results = _results_from_eval_json(_read_json(ev)) if ev.exists() else {}
            by_epochs = {(m, v.epochs): v for m, v in results.items()}
        curve = None
        ck = path / "checkpoint.json"
        if ck.exists():
            c = _read_json(ck)
            curve = (c.get("history", []), c.get("elapsed", []))
        ipc = meta.get("ipc")
        factor = int(d.get("factor", 1))
        n = (ipc or 0) * len(info.class_names) * factor ** 2
        if "distill_flops" not in meta and meta.get("iterations") and meta.get("distill"):
            meta = {**meta, **_matching_flops(meta, info)}
        return RunRecord(path=path, kind="synthetic", dataset=info.name, info=info,
                         method=meta.get("method", "?"), ipc=ipc, n_images=n, results=results,
                         by_epochs=by_epochs,
                         metadata=meta, config=meta.get("distill", {}), curve=curve,
                         eval_log=_read_jsonl(path / "log.jsonl"), factor=factor)
    if ev.exists():
        d = _read_json(ev)
        data = d.get("config", {}).get("data", {})
        return RunRecord(path=path, kind="full", dataset=data.get("name", "?"), info=None,
                         method="full", ipc=None, n_images=int(d["n_train"]),
                         results=_results_from_eval_json(d), config=d.get("config", {}))
    raise ValueError(f"{path} is not a run directory (no synthetic.json or eval.json); make one "
                     f"with `synthset distill --out {path}` or `synthset train --out {path}`")


def _batch_real(meta: dict, method: str) -> Optional[int]:
    """Real images per class a matching run used: as recorded, else as configured, else the
    method's default (a config that left it unset)."""
    from .methods import METHODS
    configured = meta.get("distill", {}).get("match", {}).get("batch_real")
    default = getattr(METHODS.get(method), "default_batch_real", None) if method in METHODS else None
    return meta.get("batch_real") or configured or default


def _matching_flops(meta: dict, info: DatasetInfo) -> dict:
    """Distillation FLOPs of a matching run saved before they were recorded: iterations x
    the FLOPs of one iteration of its saved config (``synthset.distill.iteration_flops``)."""
    from .config import DistillConfig
    from .distill import iteration_flops
    from .methods import METHODS
    from .methods.matching import MatchingMethod
    cfg = DistillConfig.from_dict(meta["distill"])
    method = METHODS.get(cfg.method)
    if not isinstance(method, MatchingMethod):
        return {}
    n_real = _batch_real(meta, cfg.method)
    per_it = iteration_flops(method, cfg, info, n_real)
    return {"flops_per_iteration": per_it, "distill_flops": per_it * meta["iterations"]}


def model_flops(model: str, info: DatasetInfo) -> tuple[int, float]:
    """(inference FLOPs per image, training FLOPs per image per epoch) of ``model``."""
    from .flops import inference_flops, train_step_flops
    from .models import build_model
    net = build_model(model, info.channels, len(info.class_names), info.size)
    shape = (info.channels, *info.size)
    return inference_flops(net, shape), train_step_flops(net, shape)


def _fmt_flops(f: Optional[float]) -> str:
    if f is None or not math.isfinite(f):
        return "-"
    for unit, scale in (("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9), ("MFLOP", 1e6)):
        if f >= scale:
            return f"{f / scale:.3g} {unit}"
    return f"{f:.3g} FLOP" if f else "0"


def _fmt_seconds(s: Optional[float]) -> str:
    if s is None:
        return "-"
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


def _fmt_ratio(r: float) -> str:
    """Training FLOPs on a set as a share of full-data training: '9.2% (11x fewer)'."""
    if r >= 1:
        return f"{r:.3g}x"
    return f"{100 * r:.3g}% ({1 / r:{'.2g' if 1 / r < 10 else '.0f'}}x fewer)"


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""

    def markdown(self) -> str:
        out = [f"### {self.title}", "", "| " + " | ".join(self.header) + " |",
               "|" + "---|" * len(self.header)]
        out += ["| " + " | ".join(r) + " |" for r in self.rows]
        if self.note:
            out += ["", self.note]
        return "\n".join(out)

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                       for r in self.rows)
        note = f"<p class='note'>{html.escape(self.note)}</p>" if self.note else ""
        return f"<h3>{html.escape(self.title)}</h3><table><tr>{head}</tr>{body}</table>{note}"

    def text(self) -> str:
        widths = [max(len(h), *(len(r[i]) for r in self.rows)) if self.rows else len(h)
                  for i, h in enumerate(self.header)]
        def line(cells):
            return "  ".join(c.ljust(w) for c, w in zip(cells, widths))
        return "\n".join([self.title, line(self.header), "-" * (sum(widths) + 2 * len(widths))]
                         + [line(r) for r in self.rows])


def protocol_model(records: list[RunRecord]) -> Optional[str]:
    """The model the accuracy table reports: ConvNet where present, else the most evaluated."""
    counts: dict[str, int] = {}
    for r in records:
        for m in r.results:
            counts[m] = counts.get(m, 0) + 1
    if not counts:
        return None
    return "ConvNet" if "ConvNet" in counts else max(counts, key=counts.get)


def _order(method: str) -> tuple[int, str]:
    return (METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER), method)


def accuracy_table(records: list[RunRecord], dataset: str) -> Optional[Table]:
    """Methods x IPC for the protocol model, beside the paper and the full-data reference;
    for imbalanced data, balanced accuracy and ROC-AUC in the same cell."""
    recs = [r for r in records if r.dataset == dataset]
    model = protocol_model(recs)
    if model is None:
        return None
    syn = [r for r in recs if r.kind == "synthetic" and model in r.results]
    ipcs = sorted({r.ipc for r in syn})
    binary = any(res.auc for r in recs for res in r.results.values())
    paper = PAPER.get(dataset, {})
    header = ["method"] + [f"IPC {k}" for k in ipcs] + (["paper"] if paper else [])
    rows = []

    def cell(res: ModelResult) -> str:
        s = f"{res.cell()}"
        if binary:
            b = ModelResult.stat(res.balanced)
            a = ModelResult.stat(res.auc)
            s += f" / {b[0]:.1f} / {a[0]:.1f}"
        return s + f" ({len(res.accuracy)}x{res.epochs} ep{', TTA' if res.tta else ''})"

    # One row per method and factor: a multi-formation set is not the paper's set, so it gets
    # its own row (and no paper figure) instead of sharing, and overwriting, the plain cell.
    # Two sets of one method, factor and IPC (e.g. two budgets) each keep their cell, in rows
    # that name their run directories; a row joins only sets whose directory names differ
    # just in the IPC (dm-ipc10-f2-d4 and dm-ipc50-f2-d4), so options are never mixed in it.
    crowded = _crowded(syn)
    for method, factor in sorted({(r.method, r.factor) for r in syn}, key=lambda mf: (_order(mf[0]), mf[1])):
        group = [r for r in syn if r.method == method and r.factor == factor]
        ambiguous = (method, factor) in crowded
        families: dict[str, dict[int, list[RunRecord]]] = {}
        for r in group:
            fam = _without_ipc(r.path.name, r.ipc) if ambiguous else ""
            families.setdefault(fam, {}).setdefault(r.ipc, []).append(r)
        slots = [{k: v[j] for k, v in by_ipc.items() if j < len(v)}
                 for by_ipc in families.values()
                 for j in range(max(len(v) for v in by_ipc.values()))]
        for slot in slots:
            name = _with_factor(method, factor)
            if ambiguous:
                name += " [" + ", ".join(slot[k].path.name for k in ipcs if k in slot) + "]"
            row = [name] + [cell(slot[k].results[model]) if k in slot else "-" for k in ipcs]
            if paper:
                ref = paper.get(method) if factor == 1 else None
                row.append(" / ".join(f"{ref[0][k]}" if k in ref[0] else "-" for k in ipcs)
                           if ref else "-")
            rows.append(row)
    for r in recs:
        if r.kind == "full" and model in r.results:
            res = r.results[model]
            row = [f"full data ({r.n_images} images)"] + [cell(res)] + [""] * (len(ipcs) - 1)
            if paper:
                row.append(str(paper["full"][0]) if "full" in paper else "-")
            rows.append(row)
    notes = [f"{model}, test accuracy % mean ± std over runs (runs x epochs), final epoch."]
    if binary:
        notes.append("Cells: accuracy ± std / balanced accuracy / ROC-AUC.")
    if any(res.tta for r in recs for res in r.results.values()):
        notes.append("TTA: scored on the mean softmax of the 8 quarter turns and mirrors of each "
                     "test image (`--tta`); its eval.json holds the plain single-view scores too.")
    if dataset in MAJORITY:
        notes.append(f"Majority-class baseline: {MAJORITY[dataset]:.1f}% (balanced 50%).")
    if paper:
        srcs = sorted({v[1] for v in paper.values()})
        notes.append("Paper column: " + "; ".join(srcs) + ".")
    return Table(f"{dataset}: accuracy ({model})", header, rows, " ".join(notes))


def crossarch(records: list[RunRecord], dataset: str) -> Optional[tuple[Table, list, list, list]]:
    """Sets evaluated on more than one architecture: sets x models."""
    recs = [r for r in records if r.dataset == dataset and len(r.results) > 1]
    if not recs:
        return None
    from .models import MODELS
    names = MODELS.names()
    models = sorted({m for r in recs for m in r.results},
                    key=lambda m: names.index(m) if m in names else len(names))
    rows, values, labels = [], [], []
    for r in sorted(recs, key=lambda r: (_order(r.method), r.ipc or 0)):
        # one epoch budget across the row where possible, so architectures compare fairly
        counts: dict[int, int] = {}
        for (_, e) in r.by_epochs:
            counts[e] = counts.get(e, 0) + 1
        e_row = max(counts, key=lambda e: (counts[e], e)) if counts else None
        cells = {m: r.by_epochs.get((m, e_row), r.results[m]) for m in r.results}
        labels.append(r.label)
        rows.append([r.label] + [f"{cells[m].cell()} ({len(cells[m].accuracy)}x{cells[m].epochs})"
                                 if m in cells else "-" for m in models])
        values.append([ModelResult.stat(cells[m].accuracy)[0] if m in cells else None for m in models])
    t = Table(f"{dataset}: cross-architecture accuracy", ["set"] + models, rows,
              "Test accuracy % mean ± std (runs x epochs) of each architecture trained on the set.")
    return t, labels, models, values


def cost_table(records: list[RunRecord], dataset: str, flops_of) -> tuple[Optional[Table], list, Optional[tuple]]:
    """Distillation cost and the cost of training the protocol model on each set against
    training it on the full training set. Returns the table, the plot points and the
    full-data point."""
    recs = [r for r in records if r.dataset == dataset]
    model = protocol_model(recs)
    if model is None:
        return None, [], None
    info = next((r.info for r in recs if r.info is not None), None)
    if info is None:
        return None, [], None
    infer, per_img = flops_of(model, info)
    full = next((r for r in recs if r.kind == "full" and model in r.results), None)
    n_full = full.n_images if full else None
    full_epochs = full.results[model].epochs if full else None
    full_flops = per_img * n_full * full_epochs if full else None
    rows, points = [], []
    synth = sorted((r for r in recs if r.kind == "synthetic"), key=lambda r: (_order(r.method), r.ipc))
    label_count = Counter(r.label for r in synth)
    crowded = _crowded(synth)
    for r in synth:
        m = r.metadata
        res = r.results.get(model)
        train = per_img * r.n_images * res.epochs if res else None
        # runs of one method and IPC that differ in options are told apart by their directory
        name = f"{r.label} [{r.path.name}]" if label_count[r.label] > 1 else r.label
        rows.append([name, str(m.get("iterations", "-")), _fmt_seconds(m.get("distill_seconds")),
                     _fmt_flops(m.get("distill_flops")),
                     f"{m['peak_memory_mib']:.0f} MiB" if m.get("peak_memory_mib") else "-",
                     f"{_fmt_flops(train)} ({res.epochs} ep)" if res else "-",
                     _fmt_seconds(float(np.mean(res.train_seconds))) if res else "-",
                     _fmt_ratio(train / full_flops) if (train and full_flops) else "-"])
        if res:
            mean, std = ModelResult.stat(res.accuracy)
            # one line per method and factor across IPCs; where one IPC has several sets of
            # them, one line per directory family, as the accuracy table's rows
            series = _with_factor(r.method, r.factor)
            if (r.method, r.factor) in crowded:
                series += f" [{_without_ipc(r.path.name, r.ipc)}]"
            points.append((series, r.method, (r.ipc, res.epochs), train, mean, std))
    # The plot's top axis names each x position by its IPC; where one IPC sits at several
    # positions (sets evaluated for different epochs), the epochs tell them apart.
    epochs_of: dict[int, set] = {}
    for _, _, (ipc, epochs), *_ in points:
        epochs_of.setdefault(ipc, set()).add(epochs)
    points = [FlopsPoint(series, method,
                         f"IPC {ipc}" + (f", {epochs} ep" if len(epochs_of[ipc]) > 1 else ""), *rest)
              for series, method, (ipc, epochs), *rest in points]
    full_point = None
    if full:
        res = full.results[model]
        mean, std = ModelResult.stat(res.accuracy)
        full_point = (full_flops, mean, std)
        rows.append(["full data", "-", "-", "-", "-", f"{_fmt_flops(full_flops)} ({full_epochs} ep)",
                     _fmt_seconds(float(np.mean(res.train_seconds))), "1"])
    note = (f"{model}: {_fmt_flops(infer)} per image forward, {_fmt_flops(per_img)} per training "
            f"image (forward + backward). Training FLOPs = per-image x images x epochs"
            + (f"; the ratio is against {n_full} real images x {full_epochs} epochs (the full-data "
               f"run in this report)." if full_flops else
               "; no full-data run in this report (add a `synthset train --out DIR` folder) for the ratio.")
            + " Distillation FLOPs count network operations (FlopCounterMode; augmentation and "
              "element-wise ops as zero); coresets count their feature network.")
    header = ["set", "iterations", "distill time", "distill FLOPs", "peak memory",
              f"train FLOPs ({model})", "train time/run", "vs full data"]
    return Table(f"{dataset}: cost", header, rows, note), points, full_point


def config_table(records: list[RunRecord]) -> Table:
    rows = []
    for r in records:
        if r.kind == "synthetic":
            c = r.config
            mc = c.get("match", {})
            keys = {"seed": c.get("seed")}
            if r.method in ("herding", "kcenter"):
                keys["features"] = c.get("coreset", {}).get("features")
            elif r.method not in ("random",):
                keys.update(iterations=r.metadata.get("iterations"), init=mc.get("init"),
                            batch_real=_batch_real(r.metadata, r.method),
                            lr_img=mc.get("lr_img"), model=mc.get("model"))
                if mc.get("init") == "herding":
                    keys["features"] = c.get("coreset", {}).get("features")
            if r.method == "datadam":
                dd = c.get("datadam", {})
                keys.update(p=dd.get("p"), lam=dd.get("lam"), attention=dd.get("attention"),
                            embedding=dd.get("embedding"))
            desc = ", ".join(f"{k}={v}" for k, v in keys.items() if v is not None)
        else:
            desc = json.dumps(r.config.get("train", {}), sort_keys=True)[:200]
        rows.append([r.label, str(r.path), desc])
    return Table("runs and configs", ["set", "run directory", "config"], rows,
                 "Full configs: synthetic.json / config.json / eval.json in each run directory.")


def build_report(run_dirs: list[str | Path], out_dir: str | Path, *, title: str = "synthset report",
                 command: str = "") -> dict[str, Path]:
    """Write ``report.html`` (self-contained: PNGs inlined), ``report.md`` and the PNGs to
    ``out_dir``. Returns the paths written."""
    records = [load_run(p) for p in run_dirs]
    if not records:
        raise ValueError("give at least one run directory")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    flops_cache: dict = {}

    def flops_of(model, info):
        key = (model, info.name, tuple(info.size))
        if key not in flops_cache:
            flops_cache[key] = model_flops(model, info)
        return flops_cache[key]

    sections: list[tuple[str, list]] = []  # (heading, [Table | ("img", path, caption)])
    for dataset in sorted({r.dataset for r in records}):
        items: list = []
        acc = accuracy_table(records, dataset)
        if acc:
            items.append(acc)
        cost, points, full_point = cost_table(records, dataset, flops_of)
        if cost:
            items.append(cost)
            if points:
                model = protocol_model([r for r in records if r.dataset == dataset])
                from .plots import accuracy_vs_flops
                p = accuracy_vs_flops(points, full_point, out / f"{dataset}_accuracy_vs_flops.png",
                                      model=model, reference=MAJORITY.get(dataset))
                items.append(("img", p, "Accuracy against the FLOPs of training on each set"))
        ca = crossarch(records, dataset)
        if ca:
            table, labels, models, values = ca
            items.append(table)
            from .plots import heatmap
            p = heatmap(labels, models, values, out / f"{dataset}_crossarch.png",
                        title=f"{dataset}: cross-architecture accuracy (%)")
            items.append(("img", p, "Cross-architecture accuracy"))
        curves = [(r.label, r.curve[0], r.curve[1]) for r in records
                  if r.dataset == dataset and r.curve and r.curve[0]]
        evals = [(r.label, [e["iteration"] for e in r.eval_log], [e["accuracy"] for e in r.eval_log])
                 for r in records if r.dataset == dataset and r.eval_log]
        if curves:
            from .plots import distillation_curves
            p = distillation_curves(curves, evals, out / f"{dataset}_curves.png")
            items.append(("img", p, "Distillation: matching loss vs iteration and vs wall-clock"))
        used: set[Path] = set()
        for r in sorted((r for r in records if r.dataset == dataset and r.kind != "full"
                         and (r.grid or (r.path / "synthetic.json").exists())),
                        key=lambda r: (_order(r.method), r.ipc or 0, r.factor)):
            stem = f"grid_{dataset}_{r.method}_ipc{r.ipc}" + (f"_f{r.factor}" if r.factor > 1 else "")
            dst, k = out / f"{stem}.png", 1
            while dst in used:  # two sets of one method and IPC (e.g. two budgets) keep both grids
                dst, k = out / f"{stem}_{k}.png", k + 1
            used.add(dst)
            if r.grid is None:  # a set saved without its grid (e.g. by a benchmark): draw it
                from .synthetic import SyntheticSet
                SyntheticSet.load(r.path).grid(dst)
            elif dst.resolve() != r.grid.resolve():
                shutil.copyfile(r.grid, dst)
            items.append(("img", dst, f"{r.label} ({r.path})"))
        sections.append((dataset, items))
    sections.append(("configs", [config_table(records)]))

    md = [f"# {title}", ""]
    if command:
        md += [f"Made with `{command}`.", ""]
    body = [f"<h1>{html.escape(title)}</h1>"]
    if command:
        body.append(f"<p>Made with <code>{html.escape(command)}</code>.</p>")
    for heading, items in sections:
        md += [f"## {heading}", ""]
        body.append(f"<h2>{html.escape(heading)}</h2>")
        for it in items:
            if isinstance(it, Table):
                md += [it.markdown(), ""]
                body.append(it.html())
            else:
                _, p, caption = it
                md += [f"![{caption}]({p.name})", "", f"*{caption}*", ""]
                data = base64.b64encode(p.read_bytes()).decode()
                body.append(f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(caption)}'>"
                            f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;"
             "padding:3px 8px;font-size:13px}th{background:#eee}.note{font-size:12px;color:#555}"
             "img{max-width:100%;image-rendering:pixelated}figure{display:inline-block;margin:0.5em}"
             "figcaption{font-size:12px;color:#555}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>")
    (out / "report.md").write_text("\n".join(md))
    (out / "report.html").write_text(page)
    return {"html": out / "report.html", "markdown": out / "report.md"}


def compare(run_dirs: list[str | Path]) -> str:
    """Methods side by side at each IPC (and the cost table), as plain text."""
    records = [load_run(p) for p in run_dirs]
    parts = []
    for dataset in sorted({r.dataset for r in records}):
        acc = accuracy_table(records, dataset)
        if acc:
            parts += [acc.text(), acc.note, ""]
        cost, _, _ = cost_table(records, dataset, model_flops)
        if cost:
            parts += [cost.text(), ""]
        ca = crossarch(records, dataset)
        if ca:
            parts += [ca[0].text(), ""]
    return "\n".join(parts)
