"""How eval reads a chain's stream: the whole answer of every chain kind, an empty answer as an
error row, and latency only where the stream gives per-token timing (fake chains with known
streams, and a fake clock, so nothing depends on the machine's speed)."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count
from typing import Any

from langchain_core.messages import AIMessageChunk
from langchain_core.runnables import Runnable, RunnableGenerator
from langchain_core.runnables.utils import AddableDict as Part
from pydantic import BaseModel

from langdeploy.evaluate.cache import ResultCache
from langdeploy.evaluate.dataset import parse_lines
from langdeploy.evaluate.generation import generate
from langdeploy.evaluate.metrics import Scorers
from langdeploy.evaluate.runner import EMPTY_ANSWER, EvalOptions, aggregate, run_examples
from langdeploy.settings import Settings


def words(text: str) -> int:
    return len(text.split())


def streaming(*pieces: Any) -> Runnable[Any, Any]:
    def gen(_: Iterator[Any]) -> Iterator[Any]:
        yield from pieces

    return RunnableGenerator(gen)


def ticks() -> Any:
    # Each call is one second later: t0, then one reading per text event, then the end.
    return count().__next__


class Entities(BaseModel):
    people: list[str]


def test_a_rag_stream_is_scored_on_its_whole_answer() -> None:
    # The rag chain streams parts (AddableDict) that sum into its invoke result.
    chain = streaming(
        Part(sources=[{"id": "a", "snippet": "Opening hours"}]),
        Part(answer="Saturdays "),
        Part(answer="from "),
        Part(answer="nine [1]."),
        Part(cited=[1]),
    )
    gen = generate(chain, {"question": "?"}, words, clock=ticks())
    assert gen.output == "Saturdays from nine [1]."  # the answer, not the last event or sources
    assert gen.completion_tokens == 4
    # Text events at t=1, 2, 3: TTFT 1 s; 4 tokens, 3 of them after the first, over 2 s.
    assert gen.ttft_s == 1 and gen.tokens_per_s == 1.5


def test_a_chat_stream_counts_the_models_tokens() -> None:
    last = AIMessageChunk(content="", usage_metadata={"input_tokens": 5, "output_tokens": 3,
                                                     "total_tokens": 8})  # fmt: skip
    chain = streaming(AIMessageChunk(content="It"), AIMessageChunk(content=" is."), last)
    gen = generate(chain, {}, words, clock=ticks())
    assert gen.output == "It is." and gen.completion_tokens == 3
    assert gen.ttft_s == 1 and gen.tokens_per_s == 2.0  # 2 tokens after the first, over 1 s


def test_one_structured_event_has_no_per_token_timing() -> None:
    gen = generate(streaming(Entities(people=["Ada"])), {}, words, clock=ticks())
    assert gen.output == '{"people":["Ada"]}'
    assert gen.ttft_s is None and gen.tokens_per_s is None
    assert gen.total_s == 1


def test_snapshots_are_not_counted_as_new_text() -> None:
    # JsonOutputParser's partials: each plain dict is the object so far.
    chain = streaming({"name": "Ada"}, {"name": "Ada King"})
    gen = generate(chain, {}, words, clock=ticks())
    assert gen.output == "Ada King" and gen.ttft_s is None and gen.tokens_per_s is None


def test_an_extract_stream_is_scored_on_the_validated_object() -> None:
    chain = streaming(Part(name="Ada "), Part(name="King"), Entities(people=["Ada King"]))
    gen = generate(chain, {}, words, clock=ticks())
    assert gen.output == '{"people":["Ada King"]}'
    assert gen.ttft_s == 1 and gen.tokens_per_s == 1.0  # the streamed field text: 2 words


class FakeHandle:
    count_tokens = staticmethod(words)


class FakeCandidate:
    """What run_examples needs of a candidate; its chain streams a fixed answer."""

    def __init__(self, settings: Settings, chain: Runnable[Any, Any]) -> None:
        self.name, self.identity, self.settings = "fake", "fake", settings
        self.handle = FakeHandle()
        self._chain = chain

    def chain(self, name: str, **overrides: Any) -> Runnable[Any, Any]:
        return self._chain

    def params(self) -> dict[str, Any]:
        return {}

    def warm_up(self) -> None:
        pass


def test_an_empty_answer_is_an_error_row_not_a_score(settings: Settings) -> None:
    examples = parse_lines(['{"id": "q", "input": {"question": "?"}, "expected": "nine"}'])
    chain = streaming(Part(sources=[]), Part(answer=""), Part(answer=" "))
    cand = FakeCandidate(settings, chain)
    rows = run_examples([cand], examples, EvalOptions(chain="rag"), ResultCache(None), Scorers())
    (row,) = rows
    assert row.error == EMPTY_ANSWER and row.score == 0.0
    assert [s.metric for s in row.scores] == ["error"]
    agg = aggregate(rows, examples, "fake", 1, "")
    assert agg["errors"] == 1 and agg["latency"]["n_fresh"] == 0


def test_a_cached_empty_answer_is_an_error_too(settings: Settings) -> None:
    examples = parse_lines(['{"id": "q", "input": {"question": "?"}, "expected": "nine"}'])
    cache = ResultCache(None)
    cand = FakeCandidate(settings, streaming(Part(answer="nine")))
    (fresh,) = run_examples([cand], examples, EvalOptions(chain="rag"), cache, Scorers())
    assert fresh.error is None
    # A row cached by an older eval, when empty answers were scored.
    for key, row in list(cache._rows.items()):
        cache._rows[key] = {**row, "output": ""}
    (cached,) = run_examples([cand], examples, EvalOptions(chain="rag"), cache, Scorers())
    assert cached.cached and cached.error == EMPTY_ANSWER


def test_latency_says_why_it_has_no_per_token_timing(settings: Settings) -> None:
    examples = parse_lines(['{"id": "q", "input": {"text": "x"}, "expected": "Ada"}'])
    cand = FakeCandidate(settings, streaming(Entities(people=["Ada"])))
    rows = run_examples(
        [cand], examples, EvalOptions(chain="extract"), ResultCache(None), Scorers()
    )
    latency = aggregate(rows, examples, "fake", 1, "")["latency"]
    assert latency["n_fresh"] == 1
    assert latency["ttft_s_p50"] is None and latency["tokens_per_s_mean"] is None
    assert "no per-token timing" in latency["note"]
