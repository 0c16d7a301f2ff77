"""Steps after a chain's model that keep its stream a stream.

A ``RunnableLambda`` after a streaming chain collects the whole stream before it runs, so an app
chain that adds ``chain | RunnableLambda(tidy)`` answers ``/stream`` with one event holding the
whole answer. A step made with :func:`stream_step` passes pieces on as they come and does its
finishing work when the stream ends.

The work lives in a *fold*: an object made fresh for each run, with ``feed(piece)`` (what to send
for this piece) and ``end()`` (what to send once the input is over). The sync and async drivers
below are the only loops; a fold has no sync/async copies.

``invoke`` sees the same fold with one piece, the whole upstream result (an ``AIMessage``, a
dict), and returns what the fold sends summed with ``+``, as ``RunnableGenerator`` does. A fold
that sends one value for a whole input keeps ``invoke``'s result the type it was.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any, Protocol

from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable, RunnableGenerator
from langchain_core.runnables.utils import AddableDict
from pydantic import BaseModel

from langdeploy.models.messages import message_text

__all__ = ["AsModel", "StreamFold", "StripText", "stream_step"]


class StreamFold(Protocol):
    """What a streaming step does with each piece, and once the stream is over."""

    def feed(self, piece: Any) -> Iterable[Any]: ...

    def end(self) -> Iterable[Any]: ...


def stream_step(fold: Callable[[], StreamFold], *, name: str) -> Runnable[Any, Any]:
    """A step that streams: ``fold()`` makes the state for one run (sync and async alike)."""

    def transform(pieces: Iterator[Any]) -> Iterator[Any]:
        state = fold()
        for piece in pieces:
            yield from state.feed(piece)
        yield from state.end()

    async def atransform(pieces: AsyncIterator[Any]) -> AsyncIterator[Any]:
        state = fold()
        async for piece in pieces:
            for out in state.feed(piece):
                yield out
        for out in state.end():
            yield out

    return RunnableGenerator(transform, atransform, name=name)


def _text(piece: Any) -> str:
    if isinstance(piece, BaseMessage):
        return message_text(piece)
    return piece if isinstance(piece, str) else str(piece)


def _with_text(piece: Any, text: str) -> Any:
    if isinstance(piece, BaseMessage):
        return piece.model_copy(update={"content": text})
    return text


def _has_metadata(piece: Any) -> bool:
    # The model's last chunk carries the finish reason and usage; it must reach the client even
    # when its text is all trailing blank space.
    return isinstance(piece, BaseMessage) and bool(
        piece.response_metadata or getattr(piece, "usage_metadata", None)
    )


class StripText:
    """Strip ``chars`` (blank space by default) from both ends of a streamed text.

    Pieces are strings or messages (their type and metadata are kept). Leading characters are
    dropped until the text starts; trailing ones are held back, and sent only when more text
    follows them. With ``first_line``, text after the first line break is dropped.
    """

    def __init__(self, chars: str | None = None, *, first_line: bool = False) -> None:
        self.chars = chars
        self.first_line = first_line
        self.started = False
        self.finished = False
        self.held = ""
        self.sent_any = False
        self.last: Any = None

    def feed(self, piece: Any) -> Iterator[Any]:
        self.last = piece
        text = "" if self.finished else _text(piece)
        if not self.started:
            text = text.lstrip(self.chars)
            self.started = bool(text)
        if self.first_line and "\n" in text:
            text = text.split("\n", 1)[0]
            self.finished = True
        body = self.held + text
        core = body.rstrip(self.chars)
        self.held = body[len(core) :]
        if core or _has_metadata(piece):
            self.sent_any = True
            yield _with_text(piece, core)

    def end(self) -> Iterator[Any]:
        # An answer that was all blank still answers: one empty piece, of the upstream's type.
        if not self.sent_any and self.last is not None:
            yield _with_text(self.last, "")


class AsModel:
    """Pass the streamed pieces of a result on, then send the whole result as ``schema``.

    On ``/stream`` the pieces are parts of the result (``{"summary": "tok"}``); they go on as they
    come, and the last event is the validated object, as an extract chain's is. A step after this
    one that collects the stream gets that object. On ``invoke`` the step sees the whole result
    as its one piece and sends only the object, so ``invoke`` returns ``schema``.
    """

    def __init__(self, schema: type[BaseModel]) -> None:
        self.schema = schema
        self.result = AddableDict()
        self.first: Any = None
        self.count = 0

    def feed(self, piece: Any) -> Iterator[Any]:
        self.result = self.result + AddableDict(piece)
        self.count += 1
        if self.count == 1:
            # Held until a second piece shows this is a stream: a lone piece is invoke's whole
            # result, which goes out only as the object.
            self.first = piece
            return
        if self.count == 2:
            yield self.first
        yield piece

    def end(self) -> Iterator[Any]:
        if self.count:
            yield self.schema.model_validate(dict(self.result))
