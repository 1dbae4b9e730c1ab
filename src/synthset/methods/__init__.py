"""Distillation methods, one file each, registered by name with ``@register_method`` in
their file. Importing this package imports every module in it, so a new method is one file."""
from __future__ import annotations

import importlib
import pkgutil

from .base import METHODS, LearnedMethod, Method, register_method

for _m in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_m.name}")

__all__ = ["METHODS", "LearnedMethod", "Method", "register_method"]
