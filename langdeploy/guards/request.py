"""Guards on a whole value: one request's input or output, or a retrieval stage's documents.

A :class:`GuardPipeline` runs its guards in order; each sees the text the previous one left
(redacted). The first ``block`` stops it. Every violation goes to the pipeline's observer (see
events.py) with a SHA-256 of the text, never the text.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from langchain_core.documents import Document

from langdeploy.guards.base import (
    Guard,
    GuardContext,
    GuardrailViolation,
    GuardResult,
    Stage,
    Violation,
)
from langdeploy.guards.events import GuardEvent, Observer, sha256
from langdeploy.guards.values import collect_texts, replace_texts

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


T = TypeVar("T")


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
