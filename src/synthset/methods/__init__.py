"""Distillation methods, one file each, registered by name with ``@register_method`` in
their file. Importing this package imports every module in it, so a new method is one file."""
from __future__ import annotations

from ..registry import discover
from .base import METHODS, LearnedMethod, Method, register_method

discover(__name__, __path__)

__all__ = ["METHODS", "LearnedMethod", "Method", "register_method"]
