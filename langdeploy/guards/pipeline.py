"""Fold guards around text, fields of a chain's input or output, and streams.

The work is split by job; this module keeps the names importable from one place:

- request.py: :class:`GuardPipeline`, the guards of one stage over a whole value (a request's
  input or output, a retrieval stage's documents);
- stream.py: :class:`StreamRedactor`, output guards over a stream, holding back only what the
  guards need to decide, and :class:`StreamCollector` for non-text chunks;
- events.py: what a pipeline reports to its observer (:class:`GuardEvent`, never the text);
- values.py: the free texts inside a value, found and put back (``collect_texts``).
"""

from __future__ import annotations

from langdeploy.guards.events import GuardEvent, Observer, sha256
from langdeploy.guards.request import BESIDE_CHARS, GuardPipeline, guard_memo
from langdeploy.guards.stream import CONTEXT_CHARS, StreamCollector, StreamRedactor
from langdeploy.guards.values import collect_texts, replace_texts

__all__ = [
    "BESIDE_CHARS",
    "CONTEXT_CHARS",
    "GuardEvent",
    "GuardPipeline",
    "Observer",
    "StreamCollector",
    "StreamRedactor",
    "collect_texts",
    "guard_memo",
    "replace_texts",
    "sha256",
]
