"""Fold guards around text, fields of a chain's input or output, and streams.

A :class:`GuardPipeline` runs its guards in order; each sees the text the previous one left
(redacted). The first ``block`` stops it. Every violation goes to the pipeline's observer (the
server's audit log and metrics) with a SHA-256 of the text, never the text.

:class:`StreamRedactor` applies output guards to a stream: it holds back only as many characters
as the guards need to decide (their ``lookahead``), so a value split across chunks is redacted
before any of it leaves.
"""

from __future__ import annotations

import contextvars
import hashlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from dataclasses import replace as respan
from typing import Any, TypeVar

from langchain_core.documents import Document
from langchain_core.messages import BaseMessage
from pydantic import BaseModel

from langdeploy.guards.base import (
    Finding,
    Guard,
    GuardContext,
    GuardrailViolation,
    GuardResult,
    Stage,
    Violation,
    merge_findings,
)

T = TypeVar("T")

# Per request (see guard_memo): (pipeline id, texts) -> (guarded texts, their redactions).
_memo: contextvars.ContextVar[dict[Any, Any] | None] = contextvars.ContextVar(
    "langdeploy_guard_memo", default=None
)


@contextmanager
def guard_memo() -> Iterator[None]:
    """Within this block (one request), each pipeline guards the same texts once."""
    token = _memo.set({})
    try:
        yield
    finally:
        _memo.reset(token)


@dataclass(frozen=True)
class GuardEvent:
    """What an observer learns about a violation: never the text, only its hash."""

    violation: Violation
    text_sha256: str
    chain: str | None = None


Observer = Callable[[GuardEvent], None]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


# Below this many characters, checking a text is quicker than handing it to another thread.
BESIDE_CHARS = 1024
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _side_pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="langdeploy-guards")
        return _POOL


@dataclass
class GuardPipeline:
    """Guards of one stage, run in order."""

    stage: Stage
    guards: list[Guard] = field(default_factory=list)
    observer: Observer | None = None
    chain: str | None = None
    # Put input-stage values back in place of their placeholders in the answer.
    restore: bool = False

    def __bool__(self) -> bool:
        return bool(self.guards)

    def context(self, count_tokens: Callable[[str], int] | None = None) -> GuardContext:
        return GuardContext(stage=self.stage, count_tokens=count_tokens)

    def _ctx(self, ctx: GuardContext | None) -> GuardContext:
        if ctx is None:
            return self.context()
        if ctx.stage != self.stage:
            ctx = GuardContext(self.stage, ctx.count_tokens, ctx.redactions, dict(ctx.metadata))
        ctx.redactions.stage = self.stage
        return ctx

    def notify(self, violations: list[Violation], text: str) -> None:
        if self.observer is None or not violations:
            return
        digest = sha256(text)
        for v in violations:
            self.observer(GuardEvent(v, digest, self.chain))

    def run(self, text: str, ctx: GuardContext | None = None) -> GuardResult:
        """Every guard on one text."""
        ctx = self._ctx(ctx)
        original = text
        violations: list[Violation] = []
        for guard in self.guards:
            result = guard.check(text, ctx)
            violations += result.violations
            if not result.allowed:
                self.notify(violations, original)
                return GuardResult(False, original, violations)
            text = result.text
        self.notify(violations, original)
        return GuardResult(True, text, violations)

    def run_fields(
        self, texts: list[str], ctx: GuardContext | None = None
    ) -> tuple[list[str], list[Violation], Violation | None]:
        """Guards over several text fields: ``joined`` guards once on all of them together, the
        others field by field. Returns the new texts, the violations and the blocking one."""
        ctx = self._ctx(ctx)
        violations: list[Violation] = []
        joined_guards = [g for g in self.guards if g.scope == "joined"]
        field_guards = [g for g in self.guards if g.scope == "field"]
        beside: Future[GuardResult] | None = None
        if joined_guards and texts:
            joined = "\n".join(texts)
            sub = GuardPipeline(self.stage, joined_guards, self.observer, self.chain)
            if (
                field_guards
                and len(joined) > BESIDE_CHARS
                and not any(g.action == "redact" for g in joined_guards)
            ):
                # Guards that only block or warn need not go first: on a long text they run
                # beside the field guards (the token counter is native code that releases the
                # GIL), and their verdict still comes first.
                # The request's context (its id for the audit log) goes along.
                run = contextvars.copy_context().run
                beside = _side_pool().submit(run, sub.run, joined, ctx)
            else:
                result = sub.run(joined, ctx)
                violations += result.violations
                if not result.allowed:
                    return texts, violations, result.blocking
        out: list[str] = []
        blocking: Violation | None = None
        field_violations: list[Violation] = []
        # Beside a joined guard, field guards report once its verdict is known: when it blocks,
        # they count as never run, as in order.
        observer = None if beside is not None else self.observer
        sub = GuardPipeline(self.stage, field_guards, observer, self.chain)
        reports: list[tuple[list[Violation], str]] = []
        for text in texts:
            if not text:
                out.append(text)
                continue
            result = sub.run(text, ctx)
            field_violations += result.violations
            reports.append((result.violations, text))
            if not result.allowed:
                blocking = result.blocking
                break
            out.append(result.text)
        if beside is not None:
            first = beside.result()
            violations += first.violations
            if not first.allowed:
                return texts, violations, first.blocking
            for found, text in reports:
                self.notify(found, text)
        violations += field_violations
        if blocking is not None:
            return texts, violations, blocking
        return out, violations, None

    def guard_value(self, value: Any, ctx: GuardContext | None = None) -> Any:
        """Guard every text inside ``value`` (a string, messages, a dict, a list, a pydantic
        model) and return it rewritten; raise GuardrailViolation when a guard blocks.

        Inside :func:`guard_memo`, the same texts through the same pipeline are guarded once:
        the second call reuses the first's texts and redactions, and reports nothing again.
        """
        if not self.guards:
            return value
        ctx = self._ctx(ctx)
        texts = collect_texts(value)
        memo = _memo.get()
        key = (id(self), tuple(texts))
        if memo is not None and key in memo:
            new, ctx.redactions = memo[key]
        else:
            new, _violations, blocking = self.run_fields(texts, ctx)
            if blocking is not None:
                raise GuardrailViolation(blocking)
            if memo is not None:
                memo[key] = (new, ctx.redactions)
        if self.restore:
            new = [ctx.redactions.restore(t) for t in new]
        if new == texts:
            return value
        return replace_texts(value, iter(new))

    def documents(
        self, docs: list[Document], ctx: GuardContext | None = None
    ) -> tuple[list[Document], list[Violation]]:
        """Retrieval stage on LangChain documents; see :meth:`filter_items`."""
        return self.filter_items(
            docs,
            lambda d: d.page_content,
            lambda d, text: d.model_copy(update={"page_content": text}),
            ctx,
        )

    def filter_items(
        self,
        items: list[T],
        text_of: Callable[[T], str],
        with_text: Callable[[T, str], T],
        ctx: GuardContext | None = None,
    ) -> tuple[list[T], list[Violation]]:
        """Retrieval stage: drop items a ``block`` guard flags, redact the rest. A poisoned
        document is removed rather than failing the whole request."""
        ctx = self._ctx(ctx)
        kept: list[T] = []
        violations: list[Violation] = []
        for item in items:
            text = text_of(item)
            result = self.run(text, ctx)
            violations += result.violations
            if not result.allowed:
                continue
            kept.append(with_text(item, result.text) if result.text != text else item)
        return kept, violations


# -- texts inside a chain's input and output ---------------------------------------------------

_STRUCTURAL_KEYS = frozenset({"type", "role", "id", "name", "tool_call_id", "run_id"})


def _is_message_dict(value: dict[Any, Any]) -> bool:
    return "content" in value and ("type" in value or "role" in value)


def collect_texts(value: Any) -> list[str]:
    """The free texts inside ``value``, in a fixed order that replace_texts follows."""
    out: list[str] = []
    _walk(value, out.append)
    return out


def _walk(value: Any, visit: Callable[[str], None]) -> None:
    if isinstance(value, str):
        visit(value)
    elif isinstance(value, BaseMessage):
        _walk_content(value.content, visit)
    elif isinstance(value, Document):
        visit(value.page_content)
    elif isinstance(value, dict):
        if _is_message_dict(value):
            _walk_content(value["content"], visit)
            return
        for k, v in value.items():
            if k not in _STRUCTURAL_KEYS:
                _walk(v, visit)
    elif isinstance(value, list | tuple):
        if (
            len(value) == 2
            and isinstance(value[0], str)
            and isinstance(value[1], str)
            and (value[0] in ("human", "user", "ai", "assistant", "system"))
        ):
            visit(value[1])  # a ("human", "text") message tuple
            return
        for v in value:
            _walk(v, visit)
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            if name not in _STRUCTURAL_KEYS:
                _walk(getattr(value, name), visit)


def _walk_content(content: Any, visit: Callable[[str], None]) -> None:
    if isinstance(content, str):
        visit(content)
    elif isinstance(content, list):
        for block in content:
            if isinstance(block, str):
                visit(block)
            elif isinstance(block, dict) and block.get("type") == "text":
                visit(str(block.get("text", "")))


def replace_texts(value: Any, new: Iterator[str]) -> Any:
    """``value`` with its texts (in collect_texts order) replaced by ``new``."""
    if isinstance(value, str):
        return next(new)
    if isinstance(value, BaseMessage):
        return value.model_copy(update={"content": _replace_content(value.content, new)})
    if isinstance(value, Document):
        return value.model_copy(update={"page_content": next(new)})
    if isinstance(value, dict):
        if _is_message_dict(value):
            return {**value, "content": _replace_content(value["content"], new)}
        return {
            k: (v if k in _STRUCTURAL_KEYS else replace_texts(v, new)) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        if (
            len(value) == 2
            and isinstance(value[0], str)
            and isinstance(value[1], str)
            and (value[0] in ("human", "user", "ai", "assistant", "system"))
        ):
            pair = (value[0], next(new))
            return list(pair) if isinstance(value, list) else pair
        items = [replace_texts(v, new) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, BaseModel):
        update = {
            name: replace_texts(getattr(value, name), new)
            for name in type(value).model_fields
            if name not in _STRUCTURAL_KEYS
        }
        return value.model_copy(update=update)
    return value


def _replace_content(content: Any, new: Iterator[str]) -> Any:
    if isinstance(content, str):
        return next(new)
    if isinstance(content, list):
        out: list[Any] = []
        for block in content:
            if isinstance(block, str):
                out.append(next(new))
            elif isinstance(block, dict) and block.get("type") == "text":
                out.append({**block, "text": next(new)})
            else:
                out.append(block)
        return out
    return content


# -- streams ----------------------------------------------------------------------------------

CONTEXT_CHARS = 64  # already-emitted text kept so that patterns see what came just before


class StreamRedactor:
    """Output guards over a stream of text pieces; ``feed`` returns what is safe to emit now.

    Guards with a ``lookahead`` run on a sliding window; those without one (JSON schema,
    refusal) need the whole answer: a blocking or rewriting one holds the stream until the end,
    a warning one is checked at the end without holding anything back.
    """

    def __init__(self, pipeline: GuardPipeline, ctx: GuardContext | None = None) -> None:
        self.pipeline = pipeline
        self.ctx = pipeline._ctx(ctx)
        self.window_guards = [g for g in pipeline.guards if g.lookahead is not None]
        self.final_guards = [g for g in pipeline.guards if g.lookahead is None]
        self.hold_all = any(g.action != "warn" for g in self.final_guards)
        self.tail = ""
        self.buffer = ""
        self.emitted = 0  # raw characters already released
        self.raw: list[str] = []
        self._seen: set[tuple[str, str, int]] = set()

    def feed(self, piece: str) -> str:
        self.raw.append(piece)
        self.buffer += piece
        if self.hold_all:
            return ""
        return self._drain(final=False)

    def finish(self) -> str:
        """The rest of the text, after the whole-answer guards; raises when one blocks."""
        if self.hold_all:
            # Whole-answer guards decide first; then window guards run over everything.
            pipeline = GuardPipeline(
                self.pipeline.stage,
                self.pipeline.guards,
                self.pipeline.observer,
                self.pipeline.chain,
            )
            result = pipeline.run("".join(self.raw), self.ctx)
            if not result.allowed:
                assert result.blocking is not None
                raise GuardrailViolation(result.blocking)
            return self._restore(result.text)
        out = self._drain(final=True)
        if self.final_guards:
            full = "".join(self.raw)
            finals = GuardPipeline(
                self.pipeline.stage, self.final_guards, self.pipeline.observer, self.pipeline.chain
            )
            result = finals.run(full, self.ctx)
            if not result.allowed and result.blocking is not None:
                raise GuardrailViolation(result.blocking)
        return out

    def _restore(self, text: str) -> str:
        return self.ctx.redactions.restore(text) if self.pipeline.restore else text

    def _drain(self, final: bool) -> str:
        window = self.tail + self.buffer
        offset = len(self.tail)
        if final:
            cut = len(window)
        else:
            cut = min((g.hold_from(window) for g in self.window_guards), default=len(window))
            if self.pipeline.restore:
                # A placeholder from the input (<EMAIL_1>) may be split across chunks.
                lt = window.rfind("<", max(offset, len(window) - 24))
                if lt >= 0 and ">" not in window[lt:]:
                    cut = min(cut, lt)
        cut = max(cut, offset)
        self.ctx.metadata["stream_offset"] = self.emitted - offset
        replace: list[tuple[Finding, Guard]] = []
        for guard in self.window_guards:
            for f in guard.scan(window, self.ctx):
                if f.end <= offset:
                    continue  # about text already released and judged
                if guard.action == "block" and (f.end < len(window) or final):
                    # Decided (a character after it is known): stop now, whatever is held.
                    self._act(guard, f, window, replace)
                if (f.end > cut or f.end == len(window)) and not final:
                    # Undecided (the next piece may extend it): hold it back.
                    cut = max(offset, min(cut, f.start))
                    continue
                self._act(guard, f, window, replace)
        # A finding accepted above may straddle a cut that a later finding moved back: then
        # hold from its start too, until no accepted finding straddles the cut.
        moved = True
        while moved and not final:
            moved = False
            for f, _g in replace:
                if max(f.start, offset) < cut < f.end:
                    cut, moved = max(offset, f.start), True
        replace = [(f, g) for f, g in replace if f.end <= cut or final]
        released = self._apply(window, offset, cut, replace)
        self.emitted += cut - offset
        self.tail = window[:cut][-CONTEXT_CHARS:]
        self.buffer = window[cut:]
        return self._restore(released)

    def _act(
        self, guard: Guard, f: Finding, window: str, replace: list[tuple[Finding, Guard]]
    ) -> None:
        key = (guard.instance_name, f.category, self.emitted - len(self.tail) + f.start)
        first = key not in self._seen
        self._seen.add(key)
        violation = guard.violation(f, self.pipeline.stage)
        if guard.action == "block":
            self.pipeline.notify([violation], window)
            raise GuardrailViolation(violation)
        if first:
            self.pipeline.notify([violation], window)
        if guard.action == "redact":
            replace.append((f, guard))

    @staticmethod
    def _by_guard_order(
        window: str, replace: list[tuple[Finding, Guard]]
    ) -> list[tuple[Finding, Guard]]:
        """Overlapping findings: the earlier guard's span wins, as when the pipeline runs on
        whole texts (a later guard sees <SECRET_1>, not the secret). What a later finding
        covers beyond it is still redacted: whole, that guard would have matched it too."""
        accepted: list[tuple[Finding, Guard]] = []
        groups: dict[int, list[tuple[Finding, Guard]]] = {}
        for f, g in replace:
            groups.setdefault(id(g), []).append((f, g))
        for group in groups.values():
            guard = group[0][1]
            taken = [a for a, _ in accepted]
            for f in merge_findings(f for f, _ in group):
                accepted += [(piece, guard) for piece in _outside(f, taken, window)]
        return sorted(accepted, key=lambda fg: fg[0].start)

    def _apply(
        self, window: str, offset: int, cut: int, replace: list[tuple[Finding, Guard]]
    ) -> str:
        parts: list[str] = []
        pos = offset
        for f, guard in self._by_guard_order(window, replace):
            start = max(f.start, offset)
            if start < pos or f.end > cut:
                continue
            parts.append(window[pos:start])
            if guard.redaction == "placeholder":
                label = (f.label or f.category).upper()
                parts.append(self.ctx.redactions.placeholder(label, window[f.start : f.end]))
            pos = f.end
        parts.append(window[pos:cut])
        return "".join(parts)


def _outside(f: Finding, taken: list[Finding], text: str) -> list[Finding]:
    """The parts of ``f`` that no finding in ``taken`` covers, trimmed of spaces."""
    pieces = [(f.start, f.end)]
    for t in taken:
        pieces = [
            part
            for s, e in pieces
            for part in ([(s, e)] if t.end <= s or e <= t.start else [(s, t.start), (t.end, e)])
            if part[0] < part[1]
        ]
    out = []
    for s, e in pieces:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if s < e:
            out.append(f if (s, e) == (f.start, f.end) else respan(f, start=s, end=e))
    return out


@dataclass
class StreamCollector:
    """Non-text chunks (dicts, structured messages) are guarded once, on their aggregate."""

    chunks: list[Any] = field(default_factory=list)

    def add(self, chunk: Any) -> None:
        self.chunks.append(chunk)

    def aggregate(self) -> Any:
        total = self.chunks[0]
        for c in self.chunks[1:]:
            try:
                total = total + c
            except TypeError:
                total = c
        return total
