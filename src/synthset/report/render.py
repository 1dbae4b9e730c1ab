"""Rendering a report: one self-contained HTML page (figures inlined), its Markdown twin and
the PNGs (``build_report``), or plain-text tables (``compare``)."""
from __future__ import annotations

import base64
import html
import shutil
from pathlib import Path

from ..atomic import write_text
from .runs import load_run, method_order
from .tables import (Table, accuracy_tables, audit_table, membership_table, config_table, cost_table, crossarch, majority,
                     protocol_model)


def build_report(run_dirs: list[str | Path], out_dir: str | Path, *, title: str = "synthset report",
                 command: str = "") -> dict[str, Path]:
    """Write ``report.html`` (self-contained: PNGs inlined), ``report.md`` and the PNGs to
    ``out_dir``. Returns the paths written."""
    records = [load_run(p) for p in run_dirs]
    if not records:
        raise ValueError("give at least one run directory")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # (heading, [Table | ("img", path, caption)])
    sections: list[tuple[str, list]] = [(dataset, _dataset_items(records, dataset, out))
                                        for dataset in sorted({r.dataset for r in records})]
    sections.append(("configs", [config_table(records)]))
    md, page = _render(sections, title, command)
    write_text(out / "report.md", md)
    write_text(out / "report.html", page)
    return {"html": out / "report.html", "markdown": out / "report.md"}


def _dataset_items(records, dataset: str, out: Path) -> list:
    """One dataset's tables and figures: accuracy, cost (and its plot), audit, membership,
    cross-architecture (and its heat map), distillation curves, image grids."""
    items: list = list(accuracy_tables(records, dataset))
    cost, points, full_point = cost_table(records, dataset)
    if cost:
        items.append(cost)
        if points:
            model = protocol_model([r for r in records if r.dataset == dataset])
            from .plots import accuracy_vs_flops
            p = accuracy_vs_flops(points, full_point, out / f"{dataset}_accuracy_vs_flops.png",
                                  model=model, reference=majority(dataset))
            items.append(("img", p, "Accuracy against the FLOPs of training on each set"))
    items += [t for t in (audit_table(records, dataset), membership_table(records, dataset)) if t]
    ca = crossarch(records, dataset)
    if ca:
        table, labels, models, values = ca
        from .plots import heatmap
        p = heatmap(labels, models, values, out / f"{dataset}_crossarch.png",
                    title=f"{dataset}: cross-architecture accuracy (%)")
        items += [table, ("img", p, "Cross-architecture accuracy")]
    curves = [(r.label, r.curve[0], r.curve[1]) for r in records
              if r.dataset == dataset and r.curve and r.curve[0]]
    evals = [(r.label, [e["iteration"] for e in r.eval_log], [e["accuracy"] for e in r.eval_log])
             for r in records if r.dataset == dataset and r.eval_log]
    if curves:
        from .plots import distillation_curves
        p = distillation_curves(curves, evals, out / f"{dataset}_curves.png")
        items.append(("img", p, "Distillation: matching loss vs iteration and vs wall-clock"))
    return items + _grids(records, dataset, out)


def _grids(records, dataset: str, out: Path) -> list:
    """Each set's image grid, copied (or drawn) into ``out``."""
    items, used = [], set()
    for r in sorted((r for r in records if r.dataset == dataset and r.kind != "full"
                     and (r.grid or (r.path / "synthetic.json").exists())),
                    key=lambda r: (method_order(r.method), r.ipc or 0, r.factor)):
        stem = f"grid_{dataset}_{r.method}_ipc{r.ipc}" + (f"_f{r.factor}" if r.factor > 1 else "")
        dst, k = out / f"{stem}.png", 1
        while dst in used:  # two sets of one method and IPC (e.g. two budgets) keep both grids
            dst, k = out / f"{stem}_{k}.png", k + 1
        used.add(dst)
        if r.grid is None:  # a set saved without its grid (e.g. by a benchmark): draw it
            from ..synthetic import SyntheticSet
            SyntheticSet.load(r.path).grid(dst)
        elif dst.resolve() != r.grid.resolve():
            shutil.copyfile(r.grid, dst)
        items.append(("img", dst, f"{r.label} ({r.path})"))
    return items


_STYLE = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}"
          "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;"
          "padding:3px 8px;font-size:13px}th{background:#eee}.note{font-size:12px;color:#555}"
          "img{max-width:100%;image-rendering:pixelated}figure{display:inline-block;margin:0.5em}"
          "figcaption{font-size:12px;color:#555}")


def _render(sections, title: str, command: str) -> tuple[str, str]:
    """(Markdown, self-contained HTML) of the sections."""
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
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>{''.join(body)}</body></html>")
    return "\n".join(md), page


def compare(run_dirs: list[str | Path]) -> str:
    """Methods side by side at each IPC (and the cost table), as plain text."""
    records = [load_run(p) for p in run_dirs]
    parts = []
    for dataset in sorted({r.dataset for r in records}):
        for acc in accuracy_tables(records, dataset):
            parts += [acc.text(), acc.note, ""]
        cost, _, _ = cost_table(records, dataset)
        if cost:
            parts += [cost.text(), ""]
        ca = crossarch(records, dataset)
        if ca:
            parts += [ca[0].text(), ""]
    return "\n".join(parts)
