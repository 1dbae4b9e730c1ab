"""Distillation methods, registered by name."""
from __future__ import annotations

from ..registry import Registry
from .base import Method, MethodOutput
from .coreset import Coreset, herding, kcenter
from .datadam import DataDAM
from .dm import DM
from .matching import MatchingMethod

METHODS: Registry[Method] = Registry("method")
METHODS.add("random", Coreset("random", None))
METHODS.add("herding", Coreset("herding", herding))
METHODS.add("kcenter", Coreset("kcenter", kcenter))
METHODS.add("dm", DM())
METHODS.add("datadam", DataDAM())

__all__ = ["METHODS", "MatchingMethod", "Method", "MethodOutput"]
