"""The report's figures as PNG files. Uses matplotlib's object API (``Figure``), not pyplot,
so nothing global (backend, current figure) changes in a user's notebook."""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from matplotlib.figure import Figure

if TYPE_CHECKING:
    from .runs import FlopsPoint

def method_color(method: str) -> str | None:
    """A method's registered colour (None: matplotlib's cycle)."""
    from ..methods import METHODS
    return METHODS.get(method).color if method in METHODS else None


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def moving_average(v: Sequence[float], window: int) -> list[float]:
    """Trailing mean over the last ``window`` values (shorter at the start)."""
    import numpy as np
    c = np.cumsum(np.asarray(v, dtype=float))
    out = []
    for i in range(len(c)):
        lo = i - window
        out.append((c[i] - (c[lo] if lo >= 0 else 0.0)) / (i - max(lo, -1)))
    return out


def distillation_curves(curves: Sequence[tuple[str, list[float], list[float]]],
                        evals: Sequence[tuple[str, list[int], list[float]]], path: Path) -> Path:
    """Matching loss against iteration and against wall-clock seconds for each run
    (``(label, losses, elapsed_seconds)``), and, where a run logged evaluations,
    accuracy against iteration (``(label, iterations, accuracies)``)."""
    panels = 3 if evals else 2
    fig = Figure(figsize=(5 * panels, 3.8))
    ax_it, ax_s = fig.add_subplot(1, panels, 1), fig.add_subplot(1, panels, 2)
    for i, (label, loss, seconds) in enumerate(curves):
        # a fresh random network every iteration makes the raw loss noisy: raw faint,
        # a moving average on top
        color = f"C{i % 10}"
        smooth = moving_average(loss, max(1, len(loss) // 30))
        x = range(1, len(loss) + 1)
        ax_it.plot(x, loss, color=color, lw=0.5, alpha=0.25)
        ax_it.plot(x, smooth, color=color, lw=1.3, label=label)
        if seconds and len(seconds) == len(loss):
            ax_s.plot(seconds, loss, color=color, lw=0.5, alpha=0.25)
            ax_s.plot(seconds, smooth, color=color, lw=1.3, label=label)
    for ax, xl in ((ax_it, "iteration"), (ax_s, "distillation wall-clock (s)")):
        ax.set_xlabel(xl)
        ax.set_ylabel("matching loss")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    ax_it.legend(fontsize=7)
    if evals:
        ax_acc = fig.add_subplot(1, panels, 3)
        for label, its, acc in evals:
            ax_acc.plot(its, acc, marker="o", label=label)
        ax_acc.set_xlabel("iteration")
        ax_acc.set_ylabel("test accuracy (%, reduced protocol)")
        ax_acc.grid(alpha=0.3)
        ax_acc.legend(fontsize=7)
    return _save(fig, path)


def heatmap(rows: Sequence[str], cols: Sequence[str], values: Sequence[Sequence[Optional[float]]],
            path: Path, *, title: str = "", fmt: str = "{:.1f}") -> Path:
    """A row x column matrix of accuracies with the values written in the cells; missing
    cells stay blank."""
    import numpy as np
    a = np.array([[math.nan if v is None else v for v in row] for row in values], dtype=float)
    fig = Figure(figsize=(1.1 * len(cols) + 2.5, 0.55 * len(rows) + 1.6))
    ax = fig.add_subplot(1, 1, 1)
    finite = a[np.isfinite(a)]
    im = ax.imshow(a, cmap="viridis", aspect="auto",
                   vmin=float(finite.min()) if finite.size else 0,
                   vmax=float(finite.max()) if finite.size else 100)
    ax.set_xticks(range(len(cols)), labels=cols, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), labels=rows)
    mid = (finite.min() + finite.max()) / 2 if finite.size else 0
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            if np.isfinite(a[i, j]):
                ax.text(j, i, fmt.format(a[i, j]), ha="center", va="center", fontsize=8,
                        color="black" if a[i, j] > mid else "white")
    fig.colorbar(im, ax=ax, label="test accuracy (%)")
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path)


def accuracy_vs_flops(points: Sequence["FlopsPoint"],
                      full: Optional[tuple[float, float, float]], path: Path, *,
                      model: str, reference: Optional[float] = None) -> Path:
    """Test accuracy against the FLOPs of training ``model`` on each set (log x);
    ``full`` is the full-data ``(flops, mean, std)``; ``reference`` draws a horizontal line
    (e.g. a majority baseline)."""
    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    by_series: dict[str, list["FlopsPoint"]] = {}
    for p in points:
        by_series.setdefault(p.series, []).append(p)
    markers = "osD^vP<>X"
    seen: dict[str, int] = {}  # series drawn so far per method: one marker each
    for series, pts in by_series.items():
        pts.sort(key=lambda p: p.flops)
        k = seen[pts[0].method] = seen.get(pts[0].method, -1) + 1
        ax.errorbar([p.flops for p in pts], [p.mean for p in pts], yerr=[p.std for p in pts],
                    marker=markers[k % len(markers)], capsize=3, label=series,
                    color=method_color(pts[0].method))
    if full is not None:
        ax.errorbar([full[0]], [full[1]], yerr=[full[2]], marker="*", markersize=12, color="black",
                    linestyle="none", label="full training set")
    if reference is not None:
        ax.axhline(reference, color="gray", ls="--", lw=0.8, label=f"majority class ({reference:.1f}%)")
    ax.set_xscale("log")
    ticks = sorted({(p.flops, p.x_label) for p in points})  # the IPC of each x position, on top
    if ticks:
        top = ax.secondary_xaxis("top")
        # slanted: the labels of close x positions (one IPC at two epoch counts) overlap
        top.set_xticks([t[0] for t in ticks], labels=[t[1] for t in ticks], fontsize=7,
                       rotation=35, ha="left")
        top.minorticks_off()
    ax.set_xlabel(f"FLOPs to train {model} (forward + backward, all epochs)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3, which="both")
    # beside the axes: with several series per method the legend would cover the points
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    return _save(fig, path)


def roc_loglog(curves: dict[str, tuple[Sequence[float], Sequence[float]]], path: Path) -> Path:
    """Membership-inference ROC curves on log-log axes, the view in which the low false-positive
    rates that matter are visible (Carlini et al., S&P 2022, Fig. 1); the diagonal is chance."""
    fig = Figure(figsize=(4.5, 4.5))
    ax = fig.add_subplot()
    _roc_curves(ax, [(label, fpr, tpr) for label, (fpr, tpr) in curves.items()])
    ax.legend(loc="lower right")
    return _save(fig, path)


def _roc_curves(ax, curves: Sequence[tuple[str, Sequence[float], Sequence[float]]]) -> None:
    """Draw (label, FPRs, TPRs) curves on log-log axes with the chance diagonal from the lowest
    plotted FPR; points at zero, which a log axis cannot show, are left out."""
    lo = 1.0
    for i, (label, fpr, tpr) in enumerate(curves):
        pts = [(f, t) for f, t in zip(fpr, tpr) if f > 0 and t > 0]
        if pts:
            lo = min(lo, pts[0][0])
            ax.plot(*zip(*pts), color=f"C{i % 10}", label=label)
    ax.plot([lo, 1], [lo, 1], color="gray", linestyle="--", linewidth=0.8, label="chance")
    ax.set(xscale="log", yscale="log", xlabel="false-positive rate", ylabel="true-positive rate")


def privacy_overview(rows: Sequence[dict], path: Path, *, fpr: float = 0.001) -> Path:
    """Several membership attacks side by side: their log-log ROC curves, and each row's TPR at
    ``fpr`` (with its interval) against the test accuracy its models reach, the privacy-utility
    view of Carlini et al. ("No Free Lunch in 'Privacy for Free'", 2022, Fig. 2). Each row:
    ``label``, ``accuracy``, ``tpr``, ``ci`` (low, high), ``roc`` ({"fpr", "tpr"}) and
    optionally ``series`` (rows of one series, e.g. DP-SGD at several epsilon, are joined)."""
    fig = Figure(figsize=(10, 4.3))
    ax_roc, ax = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    _roc_curves(ax_roc, [(r["label"], r["roc"]["fpr"], r["roc"]["tpr"]) for r in rows])
    ax_roc.set(title="online LiRA, log-log ROC")
    for i, r in enumerate(rows):
        err = [[max(0.0, r["tpr"] - r["ci"][0])], [max(0.0, r["ci"][1] - r["tpr"])]]
        ax.errorbar([r["accuracy"]], [max(r["tpr"], fpr / 10)], yerr=err, fmt="o", capsize=3,
                    color=f"C{i % 10}", label=r["label"])
    series: dict[str, list[dict]] = {}
    for r in rows:
        if r.get("series"):
            series.setdefault(r["series"], []).append(r)
    for name, members in series.items():
        members = sorted(members, key=lambda r: r["accuracy"])
        ax.plot([r["accuracy"] for r in members], [max(r["tpr"], fpr / 10) for r in members],
                color="gray", lw=0.8, ls=":")
    ax.axhline(fpr, color="gray", ls="--", lw=0.8, label="chance")
    ax.set(yscale="log", xlabel="test accuracy of the attacked models (%)",
           ylabel=f"TPR at {100 * fpr:g}% FPR", title="what each row leaks for its accuracy")
    ax_roc.grid(alpha=0.3, which="both")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    return _save(fig, path)
