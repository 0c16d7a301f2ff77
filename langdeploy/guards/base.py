"""The guard interface: text (plus stage and metadata) in, a verdict out.

A guard *detects*; its configured action says what the pipeline does with a finding:

- ``block``: the text is rejected (:class:`GuardrailViolation`);
- ``redact``: each finding's span is replaced by a typed placeholder such as ``<EMAIL_1>``; the
  placeholder-to-value mapping lives in the request's :class:`Redactions` so a later step may
  restore values when configured;
- ``warn``: the text goes through and the violation is recorded.

Guards are small pure objects: no I/O, no model loading. A token counter, when a guard needs one,
arrives in the :class:`GuardContext`.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from langdeploy.errors import LangdeployError

Stage = Literal["input", "output", "retrieval"]
Action = Literal["block", "redact", "warn"]
STAGES: tuple[Stage, ...] = ("input", "output", "retrieval")
ACTIONS: tuple[Action, ...] = ("block", "redact", "warn")


class GuardOptions(BaseModel):
    """Options a guard takes from guards.yaml; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Finding:
    """Something a guard found: where, what, and how sure (0..1)."""

    category: str
    start: int
    end: int
    score: float = 1.0
    # The placeholder type for redaction (EMAIL, PHONE, ...); defaults to the category.
    label: str | None = None


@dataclass(frozen=True)
class Violation:
    """A finding after the action is applied; ``message`` is safe to show to a client."""

    guard: str
    category: str
    action: Action
    stage: Stage
    span: tuple[int, int] | None
    score: float
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "guard": self.guard,
            "category": self.category,
            "action": self.action,
            "stage": self.stage,
            "span": list(self.span) if self.span else None,
            "score": round(self.score, 4),
            "message": self.message,
        }


@dataclass
class GuardResult:
    """The verdict of one guard or of a whole pipeline."""

    allowed: bool
    text: str
    violations: list[Violation] = field(default_factory=list)

    @property
    def blocking(self) -> Violation | None:
        return next((v for v in self.violations if v.action == "block"), None)


class Redactions:
    """Per-request placeholder mapping: the same value always gets the same placeholder."""

    def __init__(self) -> None:
        self._by_value: dict[tuple[str, str], str] = {}
        self._by_placeholder: dict[str, tuple[str, str]] = {}
        self._counts: dict[str, int] = {}
        # The stage now redacting; restore() only undoes the stages it is asked to.
        self.stage: str = "input"

    def placeholder(self, label: str, value: str) -> str:
        key = (label, value)
        if key not in self._by_value:
            n = self._counts.get(label, 0) + 1
            self._counts[label] = n
            token = f"<{label}_{n}>"
            self._by_value[key] = token
            self._by_placeholder[token] = (value, self.stage)
        return self._by_value[key]

    def restore(self, text: str, stages: tuple[str, ...] = ("input",)) -> str:
        """Put back the values behind the placeholders that ``stages`` made in this request."""
        if "<" not in text:
            return text
        for token, (value, stage) in self._by_placeholder.items():
            if stage in stages:
                text = text.replace(token, value)
        return text

    def __len__(self) -> int:
        return len(self._by_placeholder)


@dataclass
class GuardContext:
    """What one request gives its guards: the stage, a token counter and free metadata."""

    stage: Stage
    count_tokens: Callable[[str], int] | None = None
    redactions: Redactions = field(default_factory=Redactions)
    metadata: dict[str, Any] = field(default_factory=dict)


TOKEN = re.compile(r"\S+")  # a whitespace-separated token


def open_tail(text: str, lookahead: int, extends: Callable[[str], bool]) -> int:
    """Where a stream's text may still grow into a match: the start of the trailing run of
    whitespace-separated tokens that ``extends`` accepts (digits of a phone number, groups of an
    IBAN), or of the last token when the text ends inside it. Never further back than
    ``lookahead`` characters, and the end of the text when nothing is open."""
    floor = max(0, len(text) - lookahead)
    hold = len(text)
    for i, m in enumerate(reversed(list(TOKEN.finditer(text, floor)))):
        if (i == 0 and m.end() == len(text)) or extends(m.group()):
            hold = m.start()
        else:
            break
    return hold


class Guard(ABC):
    """Base class. Subclasses set ``name``, ``stages``, ``default_action`` and implement ``scan``.

    ``scan`` returns findings with spans; ``check`` applies the action. Guards whose outcome is not
    span-shaped (JSON repair, truncation) override ``check`` instead.
    """

    name: ClassVar[str] = "guard"
    description: ClassVar[str] = ""
    stages: ClassVar[tuple[Stage, ...]] = STAGES
    default_action: ClassVar[Action] = "block"
    allowed_actions: ClassVar[tuple[Action, ...]] = ACTIONS
    Options: ClassVar[type[GuardOptions]] = GuardOptions
    # Characters a streaming output guard must hold back to decide about text it has seen.
    # None: the guard needs the whole output (it is applied once, at the end).
    lookahead: ClassVar[int | None] = 64
    # "field": run on each text field; "joined": once on all fields together (length limits).
    scope: ClassVar[Literal["field", "joined"]] = "field"
    # How redact replaces a span: a typed placeholder, or nothing (invisible characters, the
    # tail of an over-long answer).
    redaction: ClassVar[Literal["placeholder", "remove"]] = "placeholder"

    def __init__(
        self,
        options: GuardOptions | None = None,
        *,
        action: Action | None = None,
        instance_name: str | None = None,
    ) -> None:
        self.options = options if options is not None else self.Options()
        self.action: Action = action or self.default_action
        if self.action not in self.allowed_actions:
            raise LangdeployError(
                f"The guard {self.name!r} does not support action {self.action!r}.",
                fix=f"Use one of: {', '.join(self.allowed_actions)}.",
            )
        self.instance_name = instance_name or self.name

    @abstractmethod
    def scan(self, text: str, ctx: GuardContext) -> list[Finding]:
        """Every finding in ``text``, with its span; no action applied yet."""

    def hold_from(self, text: str) -> int:
        """In a stream, the index from which ``text`` must be held back: text before it is
        final for this guard. The default holds the last ``lookahead`` characters; built-in
        guards hold less, only from where a match could still begin (see :func:`open_tail`)."""
        return max(0, len(text) - (self.lookahead or 0))

    def message(self, finding: Finding) -> str:
        """A client-safe message: names the category, never quotes the text."""
        return f"The text was flagged by the {self.instance_name} guard ({finding.category})."

    def violation(self, finding: Finding, stage: Stage) -> Violation:
        return Violation(
            guard=self.instance_name,
            category=finding.category,
            action=self.action,
            stage=stage,
            span=(finding.start, finding.end),
            score=finding.score,
            message=self.message(finding),
        )

    def check(self, text: str, ctx: GuardContext) -> GuardResult:
        findings = self.scan(text, ctx)
        if not findings:
            return GuardResult(True, text)
        violations = [self.violation(f, ctx.stage) for f in findings]
        if self.action == "block":
            return GuardResult(False, text, violations)
        if self.action == "redact":
            remove = self.redaction == "remove"
            text = apply_redactions(text, findings, ctx.redactions, remove=remove)
        return GuardResult(True, text, violations)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.instance_name,
            "guard": self.name,
            "action": self.action,
            "stages": list(self.stages),
            "description": self.description,
        }


def merge_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Sort by start and drop findings that overlap an earlier, longer one."""
    ordered = sorted(findings, key=lambda f: (f.start, -(f.end - f.start)))
    out: list[Finding] = []
    for f in ordered:
        if out and f.start < out[-1].end:
            continue
        out.append(f)
    return out


def apply_redactions(
    text: str, findings: Iterable[Finding], redactions: Redactions, *, remove: bool = False
) -> str:
    parts: list[str] = []
    pos = 0
    for f in merge_findings(findings):
        parts.append(text[pos : f.start])
        if not remove:
            label = (f.label or f.category).upper()
            parts.append(redactions.placeholder(label, text[f.start : f.end]))
        pos = f.end
    parts.append(text[pos:])
    return "".join(parts)


class GuardrailViolation(LangdeployError):
    """A guard blocked a request or an answer. The message never quotes the offending text."""

    status_code = 400
    error_type = "guardrail_violation"

    def __init__(self, violation: Violation) -> None:
        self.violation = violation
        super().__init__(violation.message)

    @property
    def body_extra(self) -> dict[str, Any]:
        return {"stage": self.violation.stage, "guard": self.violation.guard}

    def contract(self) -> dict[str, Any]:
        """The client-facing error body, the same for a 400 and a stream's error event."""
        return {
            "error": {
                "type": self.error_type,
                "stage": self.violation.stage,
                "guard": self.violation.guard,
                "message": self.public_message,
            }
        }
