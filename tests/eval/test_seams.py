"""The eval's seams to guards and retrieval, against the real modules: the chain's output guards
flag a leak, and the offline embedder scores related texts above unrelated ones."""

from __future__ import annotations

from langdeploy.evaluate.seams import find_embedder, find_guard_check
from langdeploy.runtime import load_app
from langdeploy.settings import Settings


def test_guard_seam_runs_the_chains_output_guards(settings: Settings) -> None:
    check, why = find_guard_check(load_app(settings), "chat")
    assert check is not None and why == ""
    assert check("Write to ada@example.com for access.") == ["pii:email"]
    assert check("The meeting is on Tuesday.") == []


def test_guard_seam_says_why_when_guards_are_off(settings: Settings) -> None:
    off = settings.model_copy(
        update={"guards": settings.guards.model_copy(update={"enabled": False})}
    )
    check, why = find_guard_check(load_app(off), "chat")
    assert check is None and why


def test_embedder_seam_gives_the_offline_embedder(settings: Settings) -> None:
    embedder, why = find_embedder(settings)
    assert embedder is not None and why == ""
    a, b, c = embedder.embed_documents(
        ["The cat sat on the mat.", "A kitten rested on the rug.", "Quarterly tax deadlines."]
    )

    def cos(x: list[float], y: list[float]) -> float:
        return sum(p * q for p, q in zip(x, y, strict=True))

    assert cos(a, b) > 0.4 > 0.2 > cos(a, c)
