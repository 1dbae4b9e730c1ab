"""Studies declared as data: a TOML file names its runs as ``synthset`` command lines (the
same flags a user types, so each row can be reproduced by hand), its evaluation protocol
and its output folder. ``synthset study FILE`` runs what is not finished yet (a set already
saved is not remade, a stopped distillation resumes from its checkpoint, an evaluation
resumes run by run) and writes ``<out>/study.json`` (every row's commands, set metadata, scores and the machine)
and ``<out>/study.md`` (its table).

    name = "ingredients-ipc10-val"
    out = "benchmarks/results/accuracy/val"
    distill = "--recipe mnist-dm-ipc10-f2 --holdout-val --iterations 400"
    evaluate = "--split val --runs 1 --epochs 300 --compile"

    [[runs]]
    name = "dm-f2"

    [[runs]]
    name = "dm-f2-experts"
    distill = "--experts 3 --ce-weight 1"      # appended to the study's distill flags

A run may give ``evaluate`` too (appended likewise), ``evaluate = false`` to make a set that
only later rows score, or ``set = "OTHER_RUN"`` to evaluate another run's set under its own
protocol (e.g. the cross-architecture row).

A final row can leave its settings to a validation study: it takes the distill flags of the
candidate with the best validation score, without ``--holdout-val`` (the final set is made
from the whole training split, as the papers do), then the study's and its own flags (a
later flag wins, so a final row may change the budget)::

    [[runs]]
    name = "mhist64-ipc10"
    pick = { study = "mhist64-val.toml", runs = ["dm-f2", "dm-f2-exp3"], by = "balanced" }

``by`` is ``accuracy`` (default), ``balanced`` or ``auc``, read from the candidates' first
model; a tie goes to the run listed first. The choice and every candidate's score are kept
in the row, so the test split never takes part in it.
"""
from __future__ import annotations

import json
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from .atomic import read_jsonl, write_json, write_text

if TYPE_CHECKING:
    from .config import EvalConfig

_STUDY_KEYS = {"name", "out", "distill", "evaluate", "runs", "description"}
_RUN_KEYS = {"name", "distill", "evaluate", "set", "note", "pick"}
_PICK_KEYS = {"study", "runs", "by"}
_PICK_BY = {"accuracy": "mean", "balanced": "balanced_mean", "auc": "auc_mean"}


@dataclass(frozen=True)
class Pick:
    """Take a run's settings from the best of some runs of a validation study."""
    study: Path
    runs: tuple[str, ...]
    by: str = "accuracy"


@dataclass(frozen=True)
class StudyRun:
    name: str
    distill: tuple[str, ...]  # the distill flags, study's then run's ("" = no distillation)
    evaluate: Optional[tuple[str, ...]]  # None: the set is made, not scored, by this row
    set: Optional[str] = None  # evaluate another run's set
    note: str = ""
    pick: Optional[Pick] = None


@dataclass(frozen=True)
class Study:
    name: str
    out: Path
    runs: tuple[StudyRun, ...]
    description: str = ""
    source: Optional[Path] = field(default=None, compare=False)

    def run_dir(self, run: StudyRun) -> Path:
        return self.out / (run.set or run.name)

    def eval_dir(self, run: StudyRun) -> Path:
        """Where a run's evaluation is written: its set's folder, or for ``set =`` rows a
        folder of its own holding nothing but the evaluation."""
        return self.out / run.name

    def distill_argv(self, run: StudyRun, *, resume: bool,
                     picked: Optional[tuple[str, ...]] = None) -> list[str]:
        """ValueError where the run picks from a validation study not yet scored."""
        if picked is None:  # ``picked``: flags a caller already chose
            picked = choose(run.pick)[1] if run.pick else ()
        # the picked flags first: the study's and the run's own flags win
        return ["distill", *picked, *run.distill, "--out", str(self.run_dir(run)),
                *(["--resume"] if resume else [])]

    def evaluate_argv(self, run: StudyRun) -> list[str]:
        out = [] if run.set is None else ["--out", str(self.eval_dir(run))]
        return ["evaluate", str(self.run_dir(run)), *run.evaluate, *out]


def load_study(path: str | Path, *, root: Optional[Path] = None) -> Study:
    """Read and check a study file; ``out`` is relative to ``root`` (default: the current
    folder, as written). ValueError names an unknown key or a duplicate run."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"cannot read the study {path}: {e}") from None
    bad = set(raw) - _STUDY_KEYS
    if bad:
        raise ValueError(f"study {path}: unknown key(s) {sorted(bad)}; known: "
                         f"{', '.join(sorted(_STUDY_KEYS))}")
    for key in ("name", "out"):
        if not raw.get(key):
            raise ValueError(f"study {path}: give {key} = \"...\"")
    runs, seen = [], set()
    for r in raw.get("runs", []):
        bad = set(r) - _RUN_KEYS
        if bad or not r.get("name"):
            raise ValueError(f"study {path}: each [[runs]] needs a name and knows only "
                             f"{', '.join(sorted(_RUN_KEYS))} (got {sorted(r)})")
        if r["name"] in seen:
            raise ValueError(f"study {path}: two runs are named {r['name']!r}")
        seen.add(r["name"])
        if r.get("set") and r["set"] not in seen:
            raise ValueError(f"study {path}: run {r['name']!r} evaluates the set of "
                             f"{r['set']!r}, which no earlier run makes")
        distill = () if r.get("set") else (*shlex.split(raw.get("distill", "")),
                                           *shlex.split(r.get("distill", "")))
        if r.get("evaluate") is False and r.get("set"):
            raise ValueError(f"study {path}: run {r['name']!r} only evaluates a set; it "
                             "cannot say evaluate = false")
        evaluate = None if r.get("evaluate") is False else (
            *shlex.split(raw.get("evaluate", "")), *shlex.split(r.get("evaluate", "")))
        runs.append(StudyRun(name=r["name"], distill=tuple(distill), evaluate=evaluate,
                             set=r.get("set"), note=r.get("note", ""),
                             pick=_read_pick(path, r) if "pick" in r else None))
    if not runs:
        raise ValueError(f"study {path}: no [[runs]]")
    out = Path(raw["out"])
    return Study(name=raw["name"], out=out if out.is_absolute() or root is None else root / out,
                 runs=tuple(runs), description=raw.get("description", ""), source=path)


def _read_pick(path: Path, r: dict) -> Pick:
    p = r["pick"]
    where = f"study {path}: run {r['name']!r}"
    if not isinstance(p, dict) or set(p) - _PICK_KEYS or not p.get("study") or not p.get("runs"):
        raise ValueError(f"{where}: pick = {{ study = \"VAL.toml\", runs = [...], by = \"accuracy\" }} "
                         f"(knows {', '.join(sorted(_PICK_KEYS))}; got {p})")
    if r.get("set"):
        raise ValueError(f"{where}: a row that evaluates another set cannot pick settings")
    by = p.get("by", "accuracy")
    if by not in _PICK_BY:
        raise ValueError(f"{where}: pick by {by!r}; choose from {', '.join(_PICK_BY)}")
    return Pick(study=path.parent / p["study"], runs=tuple(p["runs"]), by=by)


def choose(pick: Pick) -> tuple[str, tuple[str, ...], dict[str, float]]:
    """The candidate with the best validation score: its name, its distill flags without the
    validation holdout, and every candidate's score. ValueError names a candidate that the
    validation study lacks or has not scored on val yet."""
    val = load_study(pick.study)
    runs = {r.name: r for r in val.runs}
    scores = {}
    for name in pick.runs:
        if name not in runs:
            raise ValueError(f"{pick.study} has no run {name!r} to pick from "
                             f"(it has {', '.join(runs)})")
        ev = row(val, runs[name]).get("evaluation")
        if not ev or ev["split"] != "val":
            raise ValueError(f"run {name!r} of {pick.study} has no validation score yet: "
                             f"run `synthset study {pick.study}` first")
        score = next(iter(ev["models"].values())).get(_PICK_BY[pick.by])
        if score is None:
            raise ValueError(f"run {name!r} of {pick.study} records no {pick.by} score")
        scores[name] = score
    best = max(pick.runs, key=scores.__getitem__)  # max keeps the first of equals
    return best, _without_holdout(runs[best].distill), scores


def _without_holdout(flags: tuple[str, ...]) -> tuple[str, ...]:
    out, skip = [], False
    for f in flags:
        if skip:
            skip = False
        elif f == "--val-seed":
            skip = True
        elif f != "--holdout-val" and not f.startswith("--val-seed="):
            out.append(f)
    return tuple(out)


def distilled(study: Study, run: StudyRun) -> bool:
    return (study.run_dir(run) / "synthetic.json").exists()


def evaluated(study: Study, run: StudyRun, eval_config: Callable[[list[str]], "EvalConfig"]) -> bool:
    """Whether the run's evaluation file already holds every requested model with at least
    the requested runs, at the requested epochs (and, for a fixed --precision, that
    arithmetic). The study then skips the evaluation without loading the set, so a clone
    that keeps results but not set tensors still rebuilds its study.json. ``eval_config``
    reads an ``evaluate`` command line into its EvalConfig (``synthset.cli.eval_config``)."""
    from .evaluate import results_files
    from .models import MODELS
    if run.evaluate is None:
        return True
    ev = eval_config(study.evaluate_argv(run))
    path = study.eval_dir(run) / results_files(ev.split)[0]
    if not path.exists():
        return False
    done = json.loads(path.read_text())
    got = done.get("models", {})
    for model in (MODELS.canonical(m) for m in ev.models):
        m = got.get(model)
        # the arithmetic each model ran (older files record only the requested one)
        chosen = (((m or {}).get("precision") or {}).get("precision")
                  or done.get("config", {}).get("train", {}).get("precision"))
        if (m is None or len(m["runs"]) < ev.runs or m["epochs"] != ev.train.epochs
                or ev.train.precision not in ("auto", chosen)):
            return False
    return True


def can_resume(study: Study, run: StudyRun) -> bool:
    return (study.run_dir(run) / "checkpoint.json").exists()


def row(study: Study, run: StudyRun) -> dict:
    """One run's row: its commands, what its set records and what its evaluation scored."""
    from .evaluate import results_files
    out: dict = {"name": run.name, "note": run.note, "distill_command": None,
                 "evaluate_command": None if run.evaluate is None else
                 shlex.join(["synthset", *study.evaluate_argv(run)])}
    try:
        picked = choose(run.pick) if run.pick else None
        if not run.set:
            out["distill_command"] = shlex.join(["synthset", *study.distill_argv(
                run, resume=False, picked=picked[1] if picked else ())])
        if picked:
            out["picked"] = {"from": str(run.pick.study), "by": run.pick.by,
                             "chosen": picked[0], "val_scores": picked[2]}
    except ValueError as e:  # picks from a validation study not scored yet
        out["picked"] = {"pending": str(e)}
    meta_path = study.run_dir(run) / "synthetic.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        meta = meta.get("metadata", meta)
        keep = ("method", "ipc", "iterations", "distill_seconds", "loop_seconds",
                "median_iteration_seconds", "flops_per_iteration", "distill_flops", "setup",
                "val_split", "machine")
        out["set"] = {k: meta[k] for k in keep if k in meta}
    if run.evaluate is None:
        return out
    split = "val" if "val" in _split_of(run.evaluate) else "test"
    summary, per_run = (study.eval_dir(run) / f for f in results_files(split))
    if summary.exists():
        ev = json.loads(summary.read_text())
        out["evaluation"] = {"split": ev.get("split", "test"), "machine": ev.get("machine"),
                             "models": {m: _scores(v) for m, v in ev["models"].items()}}
    elif per_run.exists():
        out["partial"] = _partial(per_run)
        out["planned_runs"] = _flag_value(run.evaluate, "--runs", "?")
    return out


def _partial(per_run: Path) -> dict:
    """The finished runs of an evaluation still under way (its per-run log): each model's
    accuracies so far, with their epochs."""
    got: dict = {}
    for r in read_jsonl(per_run):
        got.setdefault(r["model"], {"runs": [], "epochs": r["epochs"]})["runs"].append(r["accuracy"])
    return got


def _scores(m: dict) -> dict:
    out = {k: m.get(k) for k in ("mean", "std", "runs", "epochs", "train_seconds")}
    out["balanced_mean"] = (m.get("balanced_accuracy") or {}).get("mean")
    if m.get("auc"):
        out["auc_mean"] = m["auc"]["mean"]
    return out


def _flag_value(flags: tuple[str, ...], name: str, default: str) -> str:
    """The value a command line's flags give ``name`` (``--name V`` or ``--name=V``)."""
    for i, f in enumerate(flags):
        if f == name and i + 1 < len(flags):
            return flags[i + 1]
        if f.startswith(name + "="):
            return f.split("=", 1)[1]
    return default


def _split_of(flags: tuple[str, ...]) -> str:
    return _flag_value(flags, "--split", "test")


def write_results(study: Study, header: dict) -> Path:
    """``<out>/study.json``: the header (machine, versions, commit) and every row."""
    path = study.out / "study.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {**header, "study": study.name, "description": study.description,
            "source": str(study.source) if study.source else None,
            "rows": [row(study, r) for r in study.runs]}
    write_json(path, body)
    write_text(study.out / "study.md", table(body).markdown() + "\n")
    return path


def table(body: dict):
    """The study's rows as a report ``Table`` (Markdown/HTML/text): each run's set cost
    (iterations, seconds per iteration, setup seconds, FLOPs per iteration, total time)
    and its scores, the split and protocol named in the title."""
    from .report.tables import Table, _fmt_flops, _fmt_seconds
    rows, splits = [], set()
    protocols = {(len(m["runs"]), m["epochs"]) for r in body["rows"]
                 for m in ((r.get("evaluation") or {}).get("models") or {}).values()}
    mixed = len(protocols) > 1  # then each score names its own runs x epochs
    for r in body["rows"]:
        s, ev = r.get("set", {}), r.get("evaluation")
        picked = r.get("picked") or {}
        cells = [r["name"], r.get("note", "") + (
            f" (settings of {picked['chosen']}, best {picked['by']} on val)" if "chosen" in picked else "")]
        cells += [str(s.get("iterations", "-")),
                  f"{s['median_iteration_seconds']:.2f}" if s.get("median_iteration_seconds") else "-",
                  _fmt_seconds((s.get("setup") or {}).get("setup_seconds")) if s.get("setup") else "-",
                  _fmt_flops(s.get("flops_per_iteration")), _fmt_seconds(_total_seconds(s))]
        if ev:
            splits.add(ev["split"])
            scores = []
            for model, m in ev["models"].items():
                extra = (f" / {m['balanced_mean']:.2f} / {m['auc_mean']:.2f}"
                         if m.get("auc_mean") is not None else "")  # binary: balanced / ROC-AUC
                own = f" ({len(m['runs'])} x {m['epochs']})" if mixed else ""
                scores.append(f"{model} {m['mean']:.2f} ± {m['std']:.2f}{extra}{own}")
            cells.append("; ".join(scores))
        elif r.get("partial"):
            planned = r.get("planned_runs", "?")
            cells.append("; ".join(
                f"{model} {sum(m['runs']) / len(m['runs']):.2f} ({len(m['runs'])} of {planned} "
                f"runs x {m['epochs']} epochs so far)" for model, m in r["partial"].items()))
        else:
            cells.append("scored by the rows that name it" if r.get("evaluate_command") is None
                         else "not yet evaluated")
        rows.append(cells)
    where = "/".join(sorted(splits)) or "-"
    proto = ("runs x epochs" if mixed else
             ", ".join(f"{n} x {e} epochs" for n, e in protocols) or "-")
    header = ["run", "what", "iterations", "s/iteration", "setup", "FLOPs/iteration",
              "distill time", f"accuracy % on {where} ({proto})"]
    here = _machine_words(body.get("machine"))
    measured = sorted({_machine_words((r.get("set") or {}).get("machine")
                                      or (r.get("evaluation") or {}).get("machine"))
                       for r in body["rows"] if r.get("set") or r.get("evaluation")})
    where = ("" if measured in ([], [here]) else
             f" The rows were measured on: {'; '.join(measured)} (each set's and evaluation's record).")
    binary = any(m.get("auc_mean") is not None for r in body["rows"]
                 for m in ((r.get("evaluation") or {}).get("models") or {}).values())
    note = (f"Made with `{body.get('command', '')}` on a {here}.{where}"
            + (" Binary data: accuracy ± std / balanced accuracy / ROC-AUC." if binary else "")
            + " Setup: the trained experts' training time, counted against the budget and in the"
            " distillation time also where the cache served them (then added to the wall-clock);"
            " s/iteration: the median iteration.")
    return Table(f"{body['study']}", header, rows, note)


def _machine_words(m) -> str:
    if not m:
        return "machine not recorded"
    if m.get("cuda"):
        return f"one {m['cuda']}"
    cpu = m.get("cpu") or {}
    return (f"{m.get('threads', '?')}-thread {cpu.get('model', 'CPU not recorded')} "
            f"({', '.join(cpu.get('flags', [])) or 'flags not recorded'})")


def _total_seconds(s: dict):
    """The set's distillation time: its wall-clock, plus the setup's recorded seconds where
    a cache served the setup (experts trained by an earlier run count for every set)."""
    wall, setup = s.get("distill_seconds"), s.get("setup") or {}
    cached = (setup.get("experts") or {}).get("cached", 0)
    if wall is None or not cached:
        return wall
    count = setup["experts"].get("count", cached)
    return wall + setup.get("setup_seconds", 0) * cached / count
