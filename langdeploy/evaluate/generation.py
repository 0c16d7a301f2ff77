"""One answer of one chain, streamed and timed: what the chain takes for a row, the answer the
eval scores, and its latency.

The stream is folded as ``invoke`` folds it (pieces summed with ``+``; a piece that does not add,
such as an extract chain's validated object or a plain-dict snapshot, replaces what came
before), so every chain kind
is scored on its whole answer, never on its last event. The answer's text is a message's
content, a string, a structured answer's text fields (rag's ``answer``, a brief's summary and
headline), or a validated object as JSON.

Timing is honest about what the stream shows: time to first token and decode speed need at
least two events that carry generated text, and the speed is the tokens that streamed over the
time from the first of those events to the last. A chain that sends its answer in one event (a
structured step that collects the model's stream) gives no per-token timing, so both are None
("n/a" in the report) rather than "TTFT = total time" and a rate made from one event.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable
from langchain_core.runnables.utils import AddableDict
from pydantic import BaseModel

from langdeploy.errors import InputError
from langdeploy.evaluate.dataset import Example
from langdeploy.models.messages import message_text


def chain_input(example: Example, chain: Runnable[Any, Any], chain_name: str) -> Any:
    """What the chain takes for this row: messages for chat, else the one text field it needs."""
    row = example.row
    if isinstance(row.input, dict):
        return row.input
    schema = chain.get_input_jsonschema()
    props = schema.get("properties", {})
    if "messages" in props:
        if row.messages is not None:
            return {"messages": [{"type": m.role, "content": m.content} for m in row.messages]}
        return {"messages": [{"type": "human", "content": row.input}]}
    if row.messages is not None:
        raise InputError(
            f"Example {example.id!r} (line {example.line}) gives 'messages', but the chain "
            f"{chain_name!r} does not take a conversation.",
            fix="Give 'input' as text or as the chain's input object, or use --chain chat.",
        )
    required = [k for k in schema.get("required", []) if props.get(k, {}).get("type") == "string"]
    if len(required) == 1:
        return {required[0]: row.input}
    raise InputError(
        f"Example {example.id!r} (line {example.line}) gives 'input' as text, but the chain "
        f"{chain_name!r} takes {sorted(props) or 'an object'}.",
        fix="Give 'input' as the chain's input object, e.g. "
        + json.dumps(dict.fromkeys(props, "...")),
    )


def streamed_text(chunk: Any) -> str:
    """The generated text one streamed piece carries: a message chunk's or a string's text, a
    structured part's text fields (``AddableDict({"answer": "tok"})``). Lists such as rag's
    sources, whole objects and plain dicts are not: a plain dict in a stream is a snapshot of
    the object so far (JsonOutputParser's partials), whose text repeats what came before."""
    if isinstance(chunk, BaseMessage):
        return message_text(chunk)
    if isinstance(chunk, str):
        return chunk
    if isinstance(chunk, AddableDict):
        return "".join(v for v in chunk.values() if isinstance(v, str))
    return ""


def answer_text(value: Any) -> str:
    """The text the eval scores for a whole answer."""
    if value is None:
        return ""
    if isinstance(value, BaseMessage):
        return message_text(value)
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        # A validated object (extract) is its JSON: json and json_schema metrics read it.
        return value.model_dump_json()
    if isinstance(value, dict):
        texts = [v for v in value.values() if isinstance(v, str)]
        if texts:
            return "\n".join(texts)
    return json.dumps(value, ensure_ascii=False, default=str)


def fold(total: Any, chunk: Any) -> Any:
    """``total + chunk`` as ``invoke`` would merge them; a chunk that does not add replaces."""
    if total is None:
        return chunk
    if isinstance(chunk, BaseModel) and not isinstance(chunk, BaseMessage):
        return chunk  # a validated object is the whole answer, not one more part of it
    try:
        return total + chunk
    except TypeError:
        return chunk


@dataclass
class Generation:
    output: str
    ttft_s: float | None
    total_s: float
    completion_tokens: int | None
    tokens_per_s: float | None

    def latency(self) -> dict[str, Any]:
        return {
            "ttft_s": self.ttft_s,
            "total_s": self.total_s,
            "completion_tokens": self.completion_tokens,
            "tokens_per_s": self.tokens_per_s,
        }


def generate(
    chain: Runnable[Any, Any],
    payload: Any,
    count_tokens: Callable[[str], int],
    clock: Callable[[], float] = time.perf_counter,
) -> Generation:
    """Stream one answer, timing the events that carry generated text."""
    t0 = clock()
    first: float | None = None
    last: float | None = None
    texts: list[str] = []
    whole: Any = None
    usage_tokens: int | None = None
    for chunk in chain.stream(payload):
        text = streamed_text(chunk)
        if text:
            last = clock()
            first = last if first is None else first
            texts.append(text)
        whole = fold(whole, chunk)
        usage = getattr(chunk, "usage_metadata", None)
        if usage:
            usage_tokens = int(usage.get("output_tokens") or 0)
    total = clock() - t0
    output = answer_text(whole)
    tokens = usage_tokens if usage_tokens is not None else (count_tokens(output) if output else 0)
    ttft = rate = None
    if first is not None and last is not None and len(texts) >= 2:
        ttft = first - t0
        # The tokens that streamed between the first event and the last: the model's count
        # when it gives one, else the streamed text's (an extract chain's field text, not the
        # JSON around it, so its rate errs low, never high).
        streamed = usage_tokens if usage_tokens is not None else count_tokens("".join(texts))
        if streamed >= 2 and last > first:
            rate = (streamed - 1) / (last - first)
    return Generation(output, ttft, total, tokens, rate)
