"""Metrics and the judge: each score carries its reason; a missing part says why, not zero."""

from __future__ import annotations

import json

import httpx
import pytest

from langdeploy.evaluate.dataset import parse_lines
from langdeploy.evaluate.judge import Judge, openai_judge, parse_verdict
from langdeploy.evaluate.metrics import (
    Scorers,
    contains,
    exact,
    example_score,
    json_schema,
    json_valid,
    regex,
    rouge_l,
    score_example,
    token_f1,
)


def test_string_metrics() -> None:
    assert exact("The Paris.", "paris").value == 1.0
    assert exact("Paris, France", "Paris").value == 0.0
    assert contains("It is PARIS.", "paris").value == 1.0
    assert contains("It is Lyon.", "paris").value == 0.0
    assert regex("2 + 3 = 5", r"\b5\b").value == 1.0
    assert regex("fifty", r"\b5\b").value == 0.0
    bad = regex("x", "(")
    assert bad.value is None and "not a valid regex" in bad.reason


def test_f1_and_rouge_l() -> None:
    assert token_f1("the cat sat", "cat sat").value == pytest.approx(1.0)
    half = token_f1("cat dog", "cat bird")
    assert half.value == pytest.approx(0.5)
    assert "precision 0.50" in half.reason
    assert token_f1("x", "y").value == 0.0
    # Order matters for ROUGE-L, not for F1.
    assert rouge_l("sat cat", "cat sat").value == pytest.approx(0.5)
    assert token_f1("sat cat", "cat sat").value == pytest.approx(1.0)


def test_json_and_schema() -> None:
    schema = {
        "type": "object",
        "required": ["priority"],
        "properties": {"priority": {"enum": ["low", "high"]}},
    }
    assert json_valid('```json\n{"priority": "low"}\n```')[0].value == 1.0
    assert json_valid("not json")[0].value == 0.0
    assert json_schema('{"priority": "high"}', schema).value == 1.0
    wrong = json_schema('{"priority": "urgent"}', schema)
    assert wrong.value == 0.0 and "priority" in wrong.reason


class _Embedder:
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [[1.0, 0.0] if "cat" in t else [0.0, 1.0] for t in texts]


def test_embedding_is_unavailable_without_an_embedder_and_skipped_in_the_mean() -> None:
    ex = parse_lines(
        [json.dumps({"input": "q", "expected": "a cat", "metric": ["contains", "embedding"]})]
    )[0]
    scores = score_example(ex, "a cat", Scorers())
    emb = next(s for s in scores if s.metric == "embedding")
    assert emb.value is None and emb.reason.startswith("unavailable")
    assert example_score(scores) == 1.0  # the mean of what could be computed
    with_embedder = score_example(ex, "a cat", Scorers(embedder=_Embedder()))
    assert next(s for s in with_embedder if s.metric == "embedding").value == pytest.approx(1.0)
    assert score_example(ex, "a dog", Scorers(embedder=_Embedder()))[1].value == 0.0


def test_parse_verdict() -> None:
    assert parse_verdict("Score: 4 - mostly right") == (4, "mostly right")
    assert parse_verdict("**Score:** 2. Wrong city.")[0] == 2
    assert parse_verdict("5 because it is right")[0] == 5
    assert parse_verdict("I think it is fine")[0] is None


def test_openai_judge_speaks_the_chat_completions_api() -> None:
    seen: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append({"url": str(request.url), "auth": request.headers.get("authorization"),
                     "body": json.loads(request.content)})  # fmt: skip
        return httpx.Response(200, json={"choices": [{"message": {"content": "Score: 5 - exact"}}]})

    judge = openai_judge("http://127.0.0.1:9/v1/", "tiny", transport=httpx.MockTransport(handler))
    score = judge.judge("Capital of France?", "Paris", "Paris")
    assert score.value == 1.0 and "exact" in score.reason
    assert seen[0]["url"] == "http://127.0.0.1:9/v1/chat/completions"
    assert seen[0]["auth"] is None  # no key unless one is given
    body = seen[0]["body"]
    assert isinstance(body, dict) and body["model"] == "tiny" and body["temperature"] == 0

    down = openai_judge(
        "http://127.0.0.1:9/v1", "tiny",
        transport=httpx.MockTransport(lambda r: httpx.Response(500, text="boom")),
    )  # fmt: skip
    failed = down.judge("q", None, "a")
    assert failed.value is None and "500" in failed.reason


def test_judge_without_a_score_is_reported_not_guessed() -> None:
    judge = Judge("echo", lambda system, user: "The answer looks plausible.")
    score = judge.judge("q", "a", "b")
    assert score.value is None and "gave no score" in score.reason
