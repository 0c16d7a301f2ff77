"""Output guards on a stream of text pieces.

:class:`StreamRedactor` holds back only as many characters as the guards need to decide (their
``lookahead``), so a value split across chunks is redacted before any of it leaves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from dataclasses import replace as respan
from typing import Any

from langdeploy.guards.base import Finding, Guard, GuardContext, GuardrailViolation, merge_findings
from langdeploy.guards.request import GuardPipeline

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
