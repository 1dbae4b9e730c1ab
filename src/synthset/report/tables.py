"""The report's tables: accuracy beside the papers, cross-architecture, cost, configs."""
from __future__ import annotations

import html
import json
import math
from collections import Counter
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .runs import (FlopsPoint, ModelResult, RunRecord, _crowded, _with_factor, _without_ipc,
                   method_order)


def references(dataset: str) -> dict:
    """The dataset's published rows (``DatasetSpec.references``)."""
    from ..data import DATASETS
    return DATASETS.get(dataset).references if dataset in DATASETS else {}


def majority(dataset: str) -> Optional[float]:
    from ..data import DATASETS
    return DATASETS.get(dataset).majority if dataset in DATASETS else None


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
        """The table in Markdown, under a ``###`` heading where it has a title."""
        out = ([f"### {self.title}", ""] if self.title else []) + [
            "| " + " | ".join(self.header) + " |", "|" + "---|" * len(self.header)]
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


def protocol(res: ModelResult) -> tuple[int, int]:
    """(runs, epochs) of an evaluation: the protocol its mean and std belong to."""
    return len(res.accuracy), res.epochs


def _protocol_text(runs: int, epochs: int) -> str:
    return f"{runs} run{'s' if runs != 1 else ''} x {epochs} epochs"


def accuracy_tables(records: list[RunRecord], dataset: str) -> list[Table]:
    """The accuracy table once per evaluation protocol (runs x epochs) of the protocol model
    among the synthetic sets: a mean over 2 runs of 300 epochs and one over 5 runs of 1000
    never share a table, and each table's title states its protocol."""
    recs = [r for r in records if r.dataset == dataset]
    model = protocol_model(recs)
    if model is None:
        return []
    found = sorted({protocol(r.results[model]) for r in recs
                    if r.kind == "synthetic" and model in r.results}, key=lambda p: (-p[1], -p[0]))
    tables = [accuracy_table(records, dataset, p) for p in found]
    if not tables:  # only full-data runs
        tables = [accuracy_table(records, dataset, None)]
    return [t for t in tables if t is not None]


def _method_rows(syn: list[RunRecord], ipcs: list[int], model: str, paper, cell) -> list[list[str]]:
    """The accuracy table's rows of the synthetic sets."""
    rows = []
    # One row per method and factor: a multi-formation set is not the paper's set, so it gets
    # its own row (and no paper figure) instead of sharing, and overwriting, the plain cell.
    # Two sets of one method, factor and IPC (e.g. two budgets) each keep their cell, in rows
    # that name their run directories; a row joins only sets whose directory names differ
    # just in the IPC (dm-ipc10-f2-d4 and dm-ipc50-f2-d4), so options are never mixed in it.
    crowded = _crowded(syn)
    for method, factor in sorted({(r.method, r.factor) for r in syn}, key=lambda mf: (method_order(mf[0]), mf[1])):
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
            if any(slot[k].results[model].tta for k in slot):
                name += " (TTA)"
            row = [name] + [cell(slot[k].results[model]) if k in slot else "-" for k in ipcs]
            if paper:
                ref = paper.get(method) if factor == 1 else None
                row.append(" / ".join(f"{ref[0][k]}" if k in ref[0] else "-" for k in ipcs)
                           if ref else "-")
            rows.append(row)
    return rows


def _accuracy_notes(recs, dataset: str, model: str, binary: bool, paper) -> list[str]:
    notes = [f"{model}, test accuracy % mean ± std over runs, final epoch."]
    if binary:
        notes.append("Cells: accuracy ± std / balanced accuracy / ROC-AUC.")
    if any(res.tta for r in recs for res in r.results.values()):
        notes.append("TTA: scored on the mean softmax of the 8 quarter turns and mirrors of each "
                     "test image (`--tta`); its eval.json holds the plain single-view scores too.")
    for r in recs:
        if r.missing_classes:
            notes.append(f"{r.label} ({r.path.name}) has no image of class(es) "
                         f"{', '.join(r.missing_classes)}: its networks cannot predict them.")
    if majority(dataset) is not None:
        notes.append(f"Majority-class baseline: {majority(dataset):.1f}% (balanced 50%).")
    if paper:
        srcs = sorted({v[1] for v in paper.values()})
        notes.append("Paper column: " + "; ".join(srcs) + ".")
    return notes


def accuracy_table(records: list[RunRecord], dataset: str,
                   only: Optional[tuple[int, int]] = None) -> Optional[Table]:
    """Methods x IPC for the protocol model, beside the paper and the full-data reference;
    for imbalanced data, balanced accuracy and ROC-AUC in the same cell. ``only``: the
    (runs, epochs) of the sets to show (default: the protocol of the most sets)."""
    recs = [r for r in records if r.dataset == dataset]
    model = protocol_model(recs)
    if model is None:
        return None
    syn = [r for r in recs if r.kind == "synthetic" and model in r.results]
    if only is None and syn:
        only = Counter(protocol(r.results[model]) for r in syn).most_common(1)[0][0]
    syn = [r for r in syn if protocol(r.results[model]) == only]
    ipcs = sorted({r.ipc for r in syn})
    binary = any(res.auc for r in recs for res in r.results.values())
    paper = references(dataset)
    header = ["method"] + [f"IPC {k}" for k in ipcs] + (["paper"] if paper else [])

    def cell(res: ModelResult) -> str:
        s = f"{res.cell()}"
        if binary:
            b = ModelResult.stat(res.balanced)
            a = ModelResult.stat(res.auc)
            s += f" / {b[0]:.1f} / {a[0]:.1f}"
        return s

    rows = _method_rows(syn, ipcs, model, paper, cell)
    for r in recs:
        if r.kind == "full" and model in r.results:
            res = r.results[model]
            row = ([f"full data ({r.n_images} images; {_protocol_text(*protocol(res))})"]
                   + [cell(res)] + [""] * (max(len(ipcs), 1) - 1))
            if paper:
                row.append(str(paper["full"][0]) if "full" in paper else "-")
            rows.append(row)
    if not ipcs:
        header = ["method", "accuracy"] + (["paper"] if paper else [])
    notes = _accuracy_notes(recs, dataset, model, binary, paper)
    shown = f", {_protocol_text(*only)}" if only else ""
    return Table(f"{dataset}: accuracy ({model}{shown})", header, rows, " ".join(notes))


def crossarch(records: list[RunRecord], dataset: str) -> Optional[tuple[Table, list, list, list]]:
    """Sets evaluated on more than one architecture: sets x models."""
    recs = [r for r in records if r.dataset == dataset and len(r.results) > 1]
    if not recs:
        return None
    from ..models import MODELS
    names, first = MODELS.names(), protocol_model(recs)
    models = sorted({m for r in recs for m in r.results},  # the protocol's network first
                    key=lambda m: (m != first, names.index(m) if m in names else len(names)))
    rows, values, labels, protocols = [], [], [], []
    for r in sorted(recs, key=lambda r: (method_order(r.method), r.ipc or 0)):
        # one epoch budget across the row where possible, so architectures compare fairly
        counts: dict[int, int] = {}
        for (_, e) in r.by_epochs:
            counts[e] = counts.get(e, 0) + 1
        e_row = max(counts, key=lambda e: (counts[e], e)) if counts else None
        cells = {m: r.by_epochs.get((m, e_row), r.results[m]) for m in r.results}
        labels.append(r.label)
        per_row = Counter(protocol(c) for c in cells.values()).most_common(1)[0][0]
        protocols.append(per_row)
        rows.append([r.label] + [cells[m].cell() + ("" if protocol(cells[m]) == per_row else
                                                     f" ({_protocol_text(*protocol(cells[m]))})")
                                 if m in cells else "-" for m in models])
        values.append([ModelResult.stat(cells[m].accuracy)[0] if m in cells else None for m in models])
    if len(set(protocols)) == 1:
        title = f"{dataset}: cross-architecture accuracy ({_protocol_text(*protocols[0])})"
    else:  # the protocol of each row in its label, the table's title cannot hold one
        title = f"{dataset}: cross-architecture accuracy"
        rows = [[f"{row[0]} ({_protocol_text(*p)})"] + row[1:] for row, p in zip(rows, protocols)]
    t = Table(title, ["set"] + models, rows,
              "Test accuracy % mean ± std of each architecture trained on the set.")
    return t, labels, models, values


def recorded_flops(records: list[RunRecord], model: str) -> tuple[Optional[float], Optional[float]]:
    """(inference FLOPs per image, training FLOPs per image) of ``model`` as an evaluation
    of one of ``records`` recorded them (None, None where none did)."""
    for r in records:
        if model in r.flops:
            f = r.flops[model]
            return f.get("inference_per_image"), f.get("train_per_image_step")
    return None, None


def _flops_points(points: list) -> list:
    """The plot's points. Its top axis names each x position by its IPC; where one IPC sits
    at several positions (sets evaluated for different epochs), the epochs tell them apart."""
    epochs_of: dict[int, set] = {}
    for _, _, (ipc, epochs), *_ in points:
        epochs_of.setdefault(ipc, set()).add(epochs)
    return [FlopsPoint(series, method,
                       f"IPC {ipc}" + (f", {epochs} ep" if len(epochs_of[ipc]) > 1 else ""), *rest)
            for series, method, (ipc, epochs), *rest in points]


def _cost_note(model, infer, per_img, n_full, full_epochs, full_flops) -> str:
    return (f"{model}: {_fmt_flops(infer)} per image forward, {_fmt_flops(per_img)} per training "
            f"image (forward + backward). Training FLOPs = per-image x images x epochs"
            + (f"; the ratio is against {n_full} real images x {full_epochs} epochs (the full-data "
               f"run in this report)." if full_flops else
               "; no full-data run in this report (add a `synthset train --out DIR` folder) for the ratio.")
            + " Distillation FLOPs count network operations (FlopCounterMode; augmentation and "
              "element-wise ops as zero); coresets count their feature network.")


def cost_table(records: list[RunRecord], dataset: str) -> tuple[Optional[Table], list, Optional[tuple]]:
    """Distillation cost and the cost of training the protocol model on each set against
    training it on the full training set. Returns the table, the plot points and the
    full-data point."""
    recs = [r for r in records if r.dataset == dataset]
    model = protocol_model(recs)
    if model is None:
        return None, [], None
    if not any(r.info is not None for r in recs):
        return None, [], None
    infer, per_img = recorded_flops(recs, model)
    full = next((r for r in recs if r.kind == "full" and model in r.results), None)
    n_full = full.n_images if full else None
    full_epochs = full.results[model].epochs if full else None
    full_flops = per_img * n_full * full_epochs if (full and per_img) else None
    rows, points = [], []
    synth = sorted((r for r in recs if r.kind == "synthetic"), key=lambda r: (method_order(r.method), r.ipc))
    label_count = Counter(r.label for r in synth)
    crowded = _crowded(synth)
    for r in synth:
        m = r.metadata
        res = r.results.get(model)
        train = per_img * r.n_images * res.epochs if (res and per_img) else None
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
            series += f" ({res.epochs} ep)"  # a line never joins evaluations of different length
            points.append((series, r.method, (r.ipc, res.epochs), train, mean, std))
    raw_points, points = points, _flops_points(points)
    full_point = None
    if full:
        res = full.results[model]
        mean, std = ModelResult.stat(res.accuracy)
        full_point = (full_flops, mean, std)
        rows.append(["full data", "-", "-", "-", "-", f"{_fmt_flops(full_flops)} ({full_epochs} ep)",
                     _fmt_seconds(float(np.mean(res.train_seconds))), "1"])
    note = _cost_note(model, infer, per_img, n_full, full_epochs, full_flops)
    header = ["set", "iterations", "distill time", "distill FLOPs", "peak memory",
              f"train FLOPs ({model})", "train time/run", "vs full data"]
    epochs = {e for _, _, (_, e), *_ in raw_points}
    if len(epochs) == 1 and rows:
        e = epochs.pop()
        header[5] = f"train FLOPs ({model}, {e} epochs)"
        rows = [row[:5] + [row[5].replace(f" ({e} ep)", "")] + row[6:] if row[0] != "full data"
                else row for row in rows]
    return Table(f"{dataset}: cost", header, rows, note), points, full_point


def config_table(records: list[RunRecord]) -> Table:
    """Each set's seed, engine settings that differ from the defaults and method options."""
    from ..config import EngineConfig
    defaults = EngineConfig().to_dict()
    rows = []
    for r in records:
        if r.kind == "synthetic":
            c, m = r.config, r.metadata
            keys: dict = {"seed": c.get("seed")}
            if m.get("iterations") is not None:
                from ..methods import METHODS
                default = getattr(METHODS.get(r.method), "default_batch_real", None) \
                    if r.method in METHODS else None
                keys.update(iterations=m.get("iterations"),
                            batch_real=m.get("batch_real") or c.get("engine", {}).get("batch_real") or default,
                            lr_img=m.get("lr_img") or c.get("engine", {}).get("lr_img"))
                keys.update({k: v for k, v in c.get("engine", {}).items()
                             if k not in ("iterations", "batch_real", "lr_img", "dsa",
                                          "checkpoint_every") and v != defaults.get(k)})
                keys.update(c.get("options", {}))
            if r.method in ("herding", "kcenter") or c.get("engine", {}).get("init") == "herding":
                keys["features"] = c.get("coreset", {}).get("features")
            desc = ", ".join(f"{k}={v}" for k, v in keys.items() if v is not None)
        else:
            desc = json.dumps(r.config.get("train", {}), sort_keys=True)[:200]
        rows.append([r.label, str(r.path), desc])
    return Table("runs and configs", ["set", "run directory", "config"], rows,
                 "Full configs: synthetic.json / config.json / eval.json in each run directory.")


def audit_table(records: list[RunRecord], dataset: str) -> Optional[Table]:
    """What `synthset audit` found: how close each set is to the training images."""
    recs = [r for r in records if r.dataset == dataset and r.audit]
    if not recs:
        return None
    rows = []
    for r in sorted(recs, key=lambda r: (method_order(r.method), r.ipc or 0)):
        m = r.audit["memorisation"]
        px, ft = m["pixel"], m.get("feature")
        drift = m.get("drift_from_start")
        rows.append([r.label, f"{100 * px['near_copy_fraction']:.1f}%",
                     f"{px['synthetic_to_train']['median']:.2f} / {px['held_out_to_train']['median']:.2f}",
                     f"{100 * ft['near_copy_fraction']:.1f}%" if ft else "-",
                     f"{ft['synthetic_to_train']['median']:.2f} / {ft['held_out_to_train']['median']:.2f}" if ft else "-",
                     f"{m['ssim_to_nearest']['median']:.3f}",
                     f"{100 * drift['relative_rms']:.1f}%" if drift else "-"])
    return Table(f"{dataset}: memorisation audit", [
        "set", "near copies (pixel)", "median NN distance: set / held-out (pixel)",
        "near copies (feature)", "median NN distance: set / held-out (feature)",
        "median SSIM to nearest", "moved from start"], rows,
        "Nearest training image of each synthetic image, against held-out real images' nearest "
        "training image; a near copy is closer than 99% of held-out images are. No privacy "
        "guarantee: a model trained on a set can leak membership without any near copy.")


def membership_table(records: list[RunRecord], dataset: str) -> Optional[Table]:
    """`synthset audit --mia-models K`: the attacks' AUC and TPR at low FPR per kind of set."""
    recs = [r for r in records if r.dataset == dataset and r.audit and r.audit.get("membership")]
    if not recs:
        return None
    rows, protocol = [], ""
    for r in recs:
        mem = r.audit["membership"]
        protocol = mem["protocol"]
        for row in mem["rows"]:
            for attack in ("loss", "lira_offline"):
                if attack in row:
                    a = row[attack]
                    rows.append([f"{r.label}: {row['kind']}", attack,
                                 f"{a['auc']:.3f} [{a['auc_ci'][0]:.3f}, {a['auc_ci'][1]:.3f}]",
                                 f"{100 * a['tpr_at_0.01_fpr']:.1f}%",
                                 f"{100 * a['tpr_at_0.001_fpr']:.1f}%" if a["fpr_0.001_resolvable"] else "-"])
    return Table(f"{dataset}: membership inference", ["set", "attack", "ROC-AUC [95% CI]",
                                                      "TPR at 1% FPR", "TPR at 0.1% FPR"], rows,
                 f"{protocol}. 'set': the run's method remade on the members; 'random': a random "
                 "real subset of the same size; 'full': a model trained on all members. An AUC "
                 "near 0.5 means the attack could not tell members apart; it is not a proof that "
                 "no attack can (Carlini et al. 2022; Zhao & Zhang, ICLR 2025).")
