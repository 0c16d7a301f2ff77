"""Seams to parts other layers provide: guard checks on outputs and an offline embedder.

Both are optional. When absent, the report says "n/a" (guards) or "unavailable" (embedding)
with the reason, instead of a made-up number.

- A guard check is any callable ``(output_text) -> list of violated guard names``.
- An embedder is any object with LangChain's ``embed_documents(texts) -> vectors``.

Pass either to ``EvalConfig`` from Python. Otherwise they are looked up by name, so wiring them
in takes one function in the other layer and nothing here:

- ``langdeploy.retrieval.embeddings.offline_embedder() -> Embeddings``
- ``langdeploy.guards.pipeline.output_violations(settings) -> Callable[[str], list[str]]``
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from langdeploy.evaluate.metrics import Embedder

GuardCheck = Callable[[str], list[str]]

# Where the other layers are expected to expose these; looked up, never required.
EMBEDDER_FACTORY = ("langdeploy.retrieval.embeddings", "offline_embedder")
GUARD_CHECK_FACTORY = ("langdeploy.guards.pipeline", "output_violations")


def _lookup(module: str, attr: str) -> tuple[Any, str]:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None, f"{module} is not installed in this build"
    factory = getattr(mod, attr, None)
    if factory is None:
        return None, f"{module} has no {attr}()"
    return factory, ""


def find_embedder() -> tuple[Embedder | None, str]:
    """The offline embedder from retrieval/, or None and why not."""
    factory, why = _lookup(*EMBEDDER_FACTORY)
    if factory is None:
        return None, why
    try:
        return factory(), ""
    except Exception as exc:  # an embedder that cannot load must not stop the eval
        return None, f"the offline embedder failed to load: {exc}"


def find_guard_check(settings: Any) -> tuple[GuardCheck | None, str]:
    """A callable that names the output guards an answer violates, or None and why not."""
    factory, why = _lookup(*GUARD_CHECK_FACTORY)
    if factory is None:
        return None, why
    try:
        return factory(settings), ""
    except Exception as exc:
        return None, f"the guards failed to load: {exc}"
