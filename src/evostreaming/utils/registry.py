"""One small registry class behind every extension point (model families, model specs, benchmarks,
judges, baselines).

An entry registers itself with one line beside its definition (``REGISTRY.register("name", thing)``
or as a decorator). A registry that names a ``discover`` package imports every module of that
package the first time it is read, so adding an entry is one new file in that folder plus its
registration line, with no list to edit elsewhere.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, *, discover: str | None = None, hint: str = ""):
        self.kind = kind  # what an entry is, for messages: "model family", "benchmark", ...
        self.hint = hint  # where to read more, appended to "unknown" errors
        self._discover = discover
        self._loaded = discover is None
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T | None = None) -> T | Callable[[T], T]:
        """``register(name, entry)``, or ``@register(name)`` above a class or function."""
        if entry is None:
            return lambda e: self.register(name, e)
        if name in self._entries and self._entries[name] is not entry:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        """Remove an entry (for entries registered at run time, e.g. in tests)."""
        self._entries.pop(name, None)

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True  # set first: the modules imported below register into this registry
        package = importlib.import_module(self._discover)
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self._discover}.{info.name}")

    def get(self, name: str) -> T:
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise ValueError(f"unknown {self.kind} {name!r}; known: {known}{self.hint}") from None

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        self._load()
        return iter(sorted(self._entries.items()))

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._entries
