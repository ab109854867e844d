"""Lazy package exports: a package's ``__init__`` names its public objects without importing the
heavy modules behind them (torch, transformers, PyAV) until one is used, so ``evostreaming --help``
and light imports stay fast."""

from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, str]):
    """``(__getattr__, __dir__, __all__)`` for ``package``: ``exports`` maps each public name to the
    submodule (relative to ``package``) that defines it."""

    def __getattr__(name: str):  # noqa: N807 (module-level __getattr__, PEP 562)
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    def __dir__() -> list[str]:  # noqa: N807
        return sorted(exports)

    return __getattr__, __dir__, sorted(exports)
