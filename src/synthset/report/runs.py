"""Reading run directories: a distill run (synthetic.json, grid.png, checkpoint.json with
the loss history, eval_runs.jsonl / eval.json after ``synthset evaluate``, log.jsonl with
``--eval-every``) or a full-data reference (``synthset train --out``: eval.json). A report
reads only these files: every FLOP count, time and memory figure was recorded by the run."""
from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np

from ..atomic import read_jsonl
from ..config import legacy_distill
from ..data.base import DatasetInfo


def method_order(method: str) -> tuple[int, str]:
    """Where a method sits in tables: its registered order (unknown names last)."""
    from ..methods import METHODS
    return (METHODS.get(method).order if method in METHODS else 1000, method)


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
    # per model, the FLOPs its evaluation recorded (inference_per_image, train_per_image_step)
    flops: dict[str, dict] = field(default_factory=dict)
    audit: Optional[dict] = None  # audit.json of `synthset audit`, if run
    missing_classes: list[str] = field(default_factory=list)  # classes the set has no image of

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


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); restore it from the run or rerun "
                         f"the command that wrote it") from None


def _recorded_flops(d: dict) -> dict[str, dict]:
    return {m: v["flops"] for m, v in d.get("models", {}).items() if "flops" in v}


def load_run(path: str | Path) -> RunRecord:
    """Read a run directory (see the module docstring), or the one ``synthset evaluate``
    imported a foreign set file or folder into."""
    from ..foreign import resolve_run_dir
    path = resolve_run_dir(path)
    syn, ev = path / "synthetic.json", path / "eval.json"
    if syn.exists():
        d = _read_json(syn)
        meta = d.get("metadata", {})
        info = DatasetInfo.from_dict(d["dataset"])
        runs = read_jsonl(path / "eval_runs.jsonl")
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
        ev_json = _read_json(ev) if ev.exists() else {}
        flops = _recorded_flops(ev_json) if ev_json else {}
        return RunRecord(path=path, kind="synthetic", dataset=info.name, info=info,
                         method=meta.get("method", "?"), ipc=ipc, n_images=n, results=results,
                         by_epochs=by_epochs,
                         metadata=meta, config=legacy_distill(meta.get("distill", {})), curve=curve,
                         eval_log=read_jsonl(path / "log.jsonl"), factor=factor, flops=flops,
                         missing_classes=ev_json.get("missing_classes", []),
                         audit=_read_json(path / "audit.json") if (path / "audit.json").exists() else None)
    if ev.exists():
        d = _read_json(ev)
        data = d.get("config", {}).get("data", {})
        return RunRecord(path=path, kind="full", dataset=data.get("name", "?"), info=None,
                         method="full", ipc=None, n_images=int(d["n_train"]),
                         results=_results_from_eval_json(d), config=d.get("config", {}),
                         flops=_recorded_flops(d))
    runs = read_jsonl(path / "eval_runs.jsonl")
    if runs:  # a `synthset train --out` stopped before its eval.json: its finished runs
        by_epochs = _results_from_runs(runs)
        return RunRecord(path=path, kind="full", dataset="?", info=None, method="full", ipc=None,
                         n_images=0, results=_best_per_model(by_epochs), by_epochs=by_epochs)
    raise ValueError(f"{path} is not a run directory (no synthetic.json or eval.json); make one "
                     f"with `synthset distill --out {path}` or `synthset train --out {path}`")
