"""A tiny name -> object registry (one per family: datasets, models, methods). Entries
register themselves with the ``register`` decorator where they are defined."""
from __future__ import annotations

import importlib
import pkgutil
from typing import Callable, Generic, Iterable, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects in registration order; unknown names list the valid ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@REGISTRY.register("name")`` above the definition."""
        def decorator(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorator

    def register_class(self, name: str) -> Callable[[type], type]:
        """Class decorator: set the class's ``name`` and register one instance of it (a
        method or a dataset spec is a class with class attributes; the registry holds its
        instance)."""
        def decorator(cls: type) -> type:
            cls.name = name
            self.add(name, cls())
            return cls

        return decorator

    def add(self, name: str, obj: T) -> None:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj

    def get(self, name: str) -> T:
        return self._items[self.canonical(name)]

    def canonical(self, name: str) -> str:
        """The registered spelling of ``name`` (case-insensitive, so `--model convnet` works)."""
        if name in self._items:
            return name
        folded = {k.lower(): k for k in self._items}
        if name.lower() in folded:
            return folded[name.lower()]
        raise ValueError(
            f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
        )

    def names(self) -> list[str]:
        return list(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(list(self._items.items()))

    def __contains__(self, name: str) -> bool:
        return name in self._items


def discover(package: str, path: Iterable[str]) -> None:
    """Import every module of ``package`` (its ``__path__``), in name order, so that each
    file's registration decorators run: a new dataset, model family or method is one file.
    Helper modules (base, spec, ...) register nothing and are imported all the same."""
    for m in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
        importlib.import_module(f"{package}.{m.name}")

