"""The `eval` extra's modules, imported on first use with an error that names the extra."""

from __future__ import annotations

import importlib
from types import ModuleType

from langdeploy.errors import MissingDependencyError


def require(module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(module, "eval") from None
