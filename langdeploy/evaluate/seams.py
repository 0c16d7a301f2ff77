"""Seams to parts other layers provide: guard checks on outputs and an offline embedder.

Both are optional. When absent, the report says "n/a" (guards) or "unavailable" (embedding)
with the reason, instead of a made-up number.

- A guard check is any callable ``(output_text) -> list of violated guard names``.
- An embedder is any object with LangChain's ``embed_documents(texts) -> vectors``.

Pass either to ``EvalConfig`` from Python. Otherwise they are built, when those packages are in
this build, from the same settings the server uses:

- embedder: ``langdeploy.retrieval.embeddings.build_embedder(settings.retrieval)`` (its
  ``embed(texts)`` is adapted to ``embed_documents``);
- guards: the output pipeline of ``langdeploy.guards.config.build_chain_guards`` for the chain
  under evaluation, from ``settings.guards.config`` (or the built-in defaults).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

from langdeploy.evaluate.metrics import Embedder

GuardCheck = Callable[[str], list[str]]


def _module(name: str) -> tuple[Any, str]:
    try:
        return importlib.import_module(name), ""
    except ImportError as exc:
        if exc.name == name:
            return None, f"{name} is not in this build"
        return None, f"{name} could not be imported ({exc})"


class _EmbedAdapter:
    """retrieval's Embedder (``embed``) seen through LangChain's ``embed_documents``."""

    def __init__(self, embedder: Any) -> None:
        self._embedder = embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors: Sequence[Sequence[float]] = self._embedder.embed(texts)
        return [list(v) for v in vectors]


def find_embedder(settings: Any) -> tuple[Embedder | None, str]:
    """The offline embedder from retrieval/, or None and why not. Nothing loads until used."""
    mod, why = _module("langdeploy.retrieval.embeddings")
    if mod is None:
        return None, why
    retrieval = getattr(settings, "retrieval", None)
    build = getattr(mod, "build_embedder", None)
    if retrieval is None or build is None:
        return None, "this build's retrieval settings have no embedder"
    try:
        embedder = build(retrieval)
    except Exception as exc:  # an embedder that cannot be built must not stop the eval
        return None, f"the offline embedder could not be built: {exc}"
    if hasattr(embedder, "embed_documents"):
        return embedder, ""
    return _EmbedAdapter(embedder), ""


def find_guard_check(settings: Any, chain: str) -> tuple[GuardCheck | None, str]:
    """The output guards the server would run on ``chain``, as a check, or None and why not."""
    mod, why = _module("langdeploy.guards.config")
    if mod is None:
        return None, why
    guards = getattr(settings, "guards", None)
    if guards is not None and not getattr(guards, "enabled", True):
        return None, "guards are disabled (guards.enabled = false)"
    try:
        source = getattr(guards, "config", None)
        config = mod.load_guards_file(source)
        pipelines = mod.build_chain_guards(
            config,
            chain,
            source=source or "defaults",
            context={"system_prompt": settings.model.system_prompt},
        )
    except Exception as exc:
        return None, f"the guards could not be built: {exc}"
    output = pipelines.output
    if not output:
        return None, f"no output guard is configured for the {chain!r} chain"

    def check(text: str) -> list[str]:
        result = output.run(text)
        return sorted({f"{v.guard}:{v.category}" for v in result.violations})

    return check, ""
