"""Scoring one output against one example. Every score comes with the reason it was given.

Scores are in [0, 1]. ``None`` means the metric could not be computed (the embedder is not
installed, the judge gave no score); the reason says why, and aggregates skip it rather than
count it as a zero.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from langdeploy.evaluate.dataset import Example


@dataclass
class Score:
    metric: str
    value: float | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Embedder(Protocol):
    """LangChain's Embeddings interface, which the offline embedder in retrieval/ implements."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]: ...


class JudgeLike(Protocol):
    def judge(self, question: str, expected: str | None, output: str) -> Score: ...


@dataclass
class Scorers:
    """The optional parts a metric may need; absent parts make their metric report why."""

    embedder: Embedder | None = None
    embedder_missing: str = "no offline embedder is available (langdeploy.retrieval has none)"
    judge: JudgeLike | None = None


_PUNCT = str.maketrans("", "", string.punctuation)
_ARTICLES = {"a", "an", "the"}


def normalize(text: str) -> str:
    """SQuAD-style normalisation: lower case, no punctuation, no articles, single spaces."""
    words = text.lower().translate(_PUNCT).split()
    return " ".join(w for w in words if w not in _ARTICLES)


def tokens(text: str) -> list[str]:
    return normalize(text).split()


def _short(text: str, n: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def exact(output: str, expected: str) -> Score:
    ok = normalize(output) == normalize(expected)
    why = "matches" if ok else "differs from"
    return Score("exact", float(ok), f"normalised output {why} {_short(expected)!r}")


def contains(output: str, expected: str) -> Score:
    ok = expected.strip().lower() in output.lower()
    where = "found in" if ok else "not found in"
    return Score("contains", float(ok), f"{_short(expected)!r} {where} the output (ignoring case)")


def regex(output: str, pattern: str) -> Score:
    try:
        match = re.search(pattern, output, flags=re.IGNORECASE | re.DOTALL)
    except re.error as exc:
        return Score("regex", None, f"pattern {pattern!r} is not a valid regex: {exc}")
    if match:
        return Score("regex", 1.0, f"/{pattern}/ matched {_short(match.group(0), 40)!r}")
    return Score("regex", 0.0, f"/{pattern}/ did not match")


def _json_candidate(output: str) -> str:
    # Small models wrap JSON in code fences; take what is inside them.
    fence = re.search(r"```(?:json)?\s*(.*?)```", output, flags=re.DOTALL)
    return (fence.group(1) if fence else output).strip()


def json_valid(output: str) -> tuple[Score, Any]:
    text = _json_candidate(output)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return Score("json", 0.0, f"not JSON: {exc.msg} at column {exc.colno}"), None
    return Score("json", 1.0, f"valid JSON ({type(value).__name__})"), value


def json_schema(output: str, schema: dict[str, Any]) -> Score:
    from langdeploy.evaluate._deps import require

    jsonschema: Any = require("jsonschema")
    validity, value = json_valid(output)
    if not validity.value:
        return Score("json_schema", 0.0, validity.reason)
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(value), key=str)
    if not errors:
        return Score("json_schema", 1.0, "valid JSON that conforms to the schema")
    first = errors[0]
    where = "/".join(str(p) for p in first.absolute_path) or "(root)"
    return Score(
        "json_schema", 0.0, f"{len(errors)} schema error(s); first at {where}: {first.message}"
    )


def token_f1(output: str, expected: str) -> Score:
    got, want = tokens(output), tokens(expected)
    if not got or not want:
        value = float(got == want)
        return Score("f1", value, "empty output or reference")
    common = sum((Counter(got) & Counter(want)).values())
    if common == 0:
        return Score("f1", 0.0, "no token in common with the reference")
    precision, recall = common / len(got), common / len(want)
    f1 = 2 * precision * recall / (precision + recall)
    return Score("f1", f1, f"precision {precision:.2f}, recall {recall:.2f} over {common} tokens")


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, start=1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


def rouge_l(output: str, expected: str) -> Score:
    got, want = tokens(output), tokens(expected)
    if not got or not want:
        return Score("rouge_l", float(got == want), "empty output or reference")
    lcs = _lcs(got, want)
    if lcs == 0:
        return Score("rouge_l", 0.0, "no common subsequence with the reference")
    precision, recall = lcs / len(got), lcs / len(want)
    f = 2 * precision * recall / (precision + recall)
    why = f"longest common subsequence {lcs} tokens (P {precision:.2f}, R {recall:.2f})"
    return Score("rouge_l", f, why)


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


def embedding(output: str, expected: str, scorers: Scorers) -> Score:
    if scorers.embedder is None:
        return Score("embedding", None, f"unavailable: {scorers.embedder_missing}")
    try:
        a, b = scorers.embedder.embed_documents([output, expected])
    except Exception as exc:  # a missing model file or extra: say so, keep the other scores
        return Score("embedding", None, f"unavailable: the embedder failed: {exc}")
    sim = cosine(a, b)
    # Cosine is in [-1, 1]; clip to the [0, 1] scale the other metrics use.
    return Score("embedding", max(0.0, sim), f"cosine similarity {sim:.3f} to the reference")


def score_example(example: Example, output: str, scorers: Scorers) -> list[Score]:
    """Every metric the row asks for (and the judge, when one is set), with reasons."""
    row = example.row
    expected = row.expected or ""
    out: list[Score] = []
    plain: dict[str, Callable[[str, str], Score]] = {
        "exact": exact,
        "contains": contains,
        "regex": regex,
        "f1": token_f1,
        "rouge_l": rouge_l,
    }
    for name in row.metrics:
        if name in plain:
            out.append(plain[name](output, expected))
        elif name == "json":
            out.append(json_valid(output)[0])
        elif name == "json_schema":
            out.append(json_schema(output, row.schema_ or {}))
        elif name == "embedding":
            out.append(embedding(output, expected, scorers))
        elif name == "judge" and scorers.judge is None:
            out.append(Score("judge", None, "unavailable: no judge model was given (--judge)"))
    if scorers.judge is not None:
        out.append(scorers.judge.judge(example.prompt_text, row.expected, output))
    return out


def example_score(scores: list[Score]) -> float | None:
    """One number per output: the mean of the metrics that could be computed."""
    values = [s.value for s in scores if s.value is not None]
    return sum(values) / len(values) if values else None
