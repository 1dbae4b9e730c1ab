"""Reports over run directories: accuracy beside the papers, cross-architecture matrices, the
cost of distilling and of training on each set, distillation curves and image grids, as one
self-contained HTML page and its Markdown twin (``build_report``) or as text (``compare``).
``runs`` reads run folders, ``tables`` builds the tables, ``render`` writes them, ``plots``
draws the figures. Names, orders and colours come from the method and dataset registries."""
from __future__ import annotations

from .render import build_report, compare
from .runs import FlopsPoint, ModelResult, RunRecord, load_run
from .tables import Table, accuracy_table, accuracy_tables, config_table, cost_table, crossarch, protocol_model

__all__ = ["FlopsPoint", "ModelResult", "RunRecord", "Table", "accuracy_table", "accuracy_tables", "build_report",
           "compare", "config_table", "cost_table", "crossarch", "load_run", "protocol_model"]
