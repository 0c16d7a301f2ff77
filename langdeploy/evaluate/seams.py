"""Seams to parts other layers provide: guard checks on outputs and an offline embedder.

- A guard check is any callable ``(output_text) -> list of violated guard names``.
- An embedder is any object with LangChain's ``embed_documents(texts) -> vectors``.

Pass either to ``EvalConfig`` from Python. Otherwise they come from the app being evaluated: the
output guards the server would run on the chain (the app's guards.yaml, the chain's guard
profile), and the embedder of ``settings.retrieval``. The report says "n/a" with the reason only
when a part is switched off or its optional extra is not installed; any other failure is an
error, never a silent "n/a".
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from typing import Any

from langdeploy.evaluate.metrics import Embedder
from langdeploy.runtime import AppRuntime

GuardCheck = Callable[[str], list[str]]


class _EmbedAdapter:
    """retrieval's Embedder (``embed``) seen through LangChain's ``embed_documents``."""

    def __init__(self, embedder: Any) -> None:
        self._embedder = embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors: Sequence[Sequence[float]] = self._embedder.embed(texts)
        return [list(v) for v in vectors]


def find_embedder(settings: Any) -> tuple[Embedder | None, str]:
    """The app's embedder (nothing loads until used), or None and why not."""
    from langdeploy.retrieval.embeddings import build_embedder

    retrieval = settings.retrieval
    if retrieval.embedder == "onnx" and importlib.util.find_spec("onnxruntime") is None:
        return None, "the offline embedder needs the rag extra: pip install 'langdeploy[rag]'"
    return _EmbedAdapter(build_embedder(retrieval)), ""


def find_guard_check(app: AppRuntime, chain: str) -> tuple[GuardCheck | None, str]:
    """The output guards the server would run on ``chain``, as a check, or None and why not."""
    if not app.settings.guards.enabled:
        return None, "guards are disabled (guards.enabled = false)"
    output = app.chain_guards(chain).output
    if not output:
        return None, f"no output guard is configured for the {chain!r} chain"

    def check(text: str) -> list[str]:
        result = output.run(text)
        return sorted({f"{v.guard}:{v.category}" for v in result.violations})

    return check, ""
