"""The seams to guards and retrieval: n/a with a reason when absent, adapted when present.

The stand-in modules below have the shapes of langdeploy.guards.config and
langdeploy.retrieval.embeddings (built on other branches); the real ones replace them when the
branches merge, and these tests then keep checking the adapters' side of the contract.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from langdeploy.evaluate.seams import find_embedder, find_guard_check
from langdeploy.settings import Settings


@dataclass
class _Violation:
    guard: str
    category: str


@dataclass
class _Result:
    violations: list[_Violation] = field(default_factory=list)


class _Pipeline:
    def __init__(self, guards: list[str]) -> None:
        self.guards = guards

    def __bool__(self) -> bool:
        return bool(self.guards)

    def run(self, text: str) -> _Result:
        return _Result([_Violation("pii", "EMAIL")] if "@" in text else [])


@pytest.mark.skipif(
    importlib.util.find_spec("langdeploy.guards.config") is not None, reason="real guards present"
)
def test_without_the_packages_both_seams_say_why(settings: Settings) -> None:
    check, why = find_guard_check(settings, "chat")
    assert check is None and "not in this build" in why


def test_guard_seam_adapts_the_output_pipeline(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    seen: dict[str, Any] = {}
    fake = ModuleType("langdeploy.guards.config")

    def load_guards_file(path: Path | None) -> str:
        seen["path"] = path
        return "config"

    def build_chain_guards(config: str, chain: str, **kwargs: Any) -> Any:
        seen["chain"] = chain
        return type("CG", (), {"output": _Pipeline(["pii"])})()

    fake.load_guards_file = load_guards_file  # type: ignore[attr-defined]
    fake.build_chain_guards = build_chain_guards  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "langdeploy.guards.config", fake)
    check, why = find_guard_check(settings, "summarize")
    assert check is not None and why == ""
    assert seen["chain"] == "summarize"
    assert check("write to a@b.c") == ["pii:EMAIL"]
    assert check("nothing here") == []

    fake.build_chain_guards = lambda *a, **k: type("CG", (), {"output": _Pipeline([])})()  # type: ignore[attr-defined]
    check, why = find_guard_check(settings, "chat")
    assert check is None and "no output guard" in why


def test_embedder_seam_adapts_embed_to_embed_documents(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    class Vectors:
        def embed(self, texts: list[str]) -> list[list[float]]:
            return [[1.0, float(len(t))] for t in texts]

    fake = ModuleType("langdeploy.retrieval.embeddings")
    fake.build_embedder = lambda retrieval: Vectors()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "langdeploy.retrieval.embeddings", fake)
    # This branch's settings have no retrieval section: the seam says so.
    embedder, why = find_embedder(settings)
    assert embedder is None and "no embedder" in why
    with_retrieval = type("S", (), {"retrieval": object(), "model": settings.model})()
    embedder, why = find_embedder(with_retrieval)
    assert embedder is not None and why == ""
    assert embedder.embed_documents(["ab", "c"]) == [[1.0, 2.0], [1.0, 1.0]]
