"""Steps made with stream_step pass a stream on piece by piece, sync and async alike, and give
invoke a whole result of the upstream's type (composition tests, no model)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.messages import AIMessage, AIMessageChunk
from pydantic import BaseModel

from langdeploy.chains.streaming import AsModel, StripText, stream_step

tidy = stream_step(StripText, name="tidy")


def chunks(*texts: str) -> Iterator[AIMessageChunk]:
    return iter(AIMessageChunk(content=t) for t in texts)


def test_strip_sends_each_piece_and_holds_only_blank_space() -> None:
    out = list(tidy.transform(chunks("\n", "  It", " is", " \n", "  a llama", ".\n\n", " ")))
    assert [m.content for m in out] == ["It", " is", " \n  a llama", "."]


def test_strip_keeps_the_last_chunks_metadata_when_its_text_is_blank() -> None:
    last = AIMessageChunk(
        content="\n", response_metadata={"finish_reason": "stop"}, usage_metadata=None
    )
    out = list(tidy.transform(iter([*chunks(" Hi"), last])))
    assert out[-1].content == "" and out[-1].response_metadata["finish_reason"] == "stop"
    assert "".join(str(m.content) for m in out) == "Hi"


def test_strip_invoke_returns_one_message_of_the_same_type() -> None:
    message = AIMessage(content="  Hello.\n", response_metadata={"finish_reason": "stop"})
    out = tidy.invoke(message)
    assert type(out) is AIMessage and out.content == "Hello."
    assert out.response_metadata == {"finish_reason": "stop"}
    blank = tidy.invoke(AIMessage(content=" \n "))
    assert type(blank) is AIMessage and blank.content == ""
    assert tidy.invoke("   ") == ""


def test_strip_first_line_and_custom_chars() -> None:
    line = stream_step(lambda: StripText(' \n"', first_line=True), name="line")
    assert list(line.transform(iter(['"A', " head", 'line"', "\nrest"]))) == ["A", " head", "line"]


def test_the_async_stream_matches_the_sync_one() -> None:
    texts = ("\n", " It", " is", " \n", " done", " ")

    async def source() -> AsyncIterator[AIMessageChunk]:
        for chunk in chunks(*texts):
            yield chunk

    async def collect() -> list[Any]:
        return [m async for m in tidy.atransform(source())]

    assert asyncio.run(collect()) == list(tidy.transform(chunks(*texts)))


class Pair(BaseModel):
    a: str
    b: str = ""


def test_as_model_passes_pieces_then_sends_the_whole_result() -> None:
    step = stream_step(lambda: AsModel(Pair), name="pair")
    pieces = [{"a": "x"}, {"b": "y"}, {"b": "z"}]
    assert list(step.transform(iter(pieces))) == [*pieces, Pair(a="x", b="yz")]
    # A step after it that collects the stream gets the object.
    assert (step | (lambda pair: pair.b)).invoke({"a": "x", "b": "w"}) == "w"
    assert "".join((step | (lambda pair: pair.b)).stream({"a": "x", "b": "w"})) == "w"


def test_as_model_invoke_returns_the_model_once() -> None:
    step = stream_step(lambda: AsModel(Pair), name="pair")
    assert step.invoke({"a": "x"}) == Pair(a="x")
    assert list(step.stream({"a": "x"})) == [Pair(a="x")]
