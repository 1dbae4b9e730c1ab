"""A tiny name -> object registry (one per family: datasets, models, methods)."""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to builders; lookups of unknown names list the valid ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorator

    def add(self, name: str, obj: T) -> None:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj

    def get(self, name: str) -> T:
        if name in self._items:
            return self._items[name]
        # Case-insensitive fallback so `--model convnet` works.
        folded = {k.lower(): k for k in self._items}
        if name.lower() in folded:
            return self._items[folded[name.lower()]]
        raise ValueError(
            f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
        )

    def canonical(self, name: str) -> str:
        self.get(name)
        return name if name in self._items else {k.lower(): k for k in self._items}[name.lower()]

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items
