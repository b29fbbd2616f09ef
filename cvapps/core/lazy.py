"""Lazy package exports: ``from cvapps.classification import classify`` imports only what it names.

>>> import types
>>> package = types.ModuleType("demo")
>>> package.__getattr__, package.__dir__ = lazy_exports("demo", {"sqrt": "math"}, [])
>>> package.__getattr__("sqrt")(9.0)
3.0
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(
    package: str, table: dict[str, str], names: list[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for a package ``__init__``: ``table`` maps an exported name to the module
    that defines it, imported on first access (PEP 562); ``names`` are the names defined in the
    ``__init__`` itself (its constants), listed by ``dir()``."""

    def __getattr__(name: str):
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    def __dir__():
        return sorted({*names, *table})

    return __getattr__, __dir__
