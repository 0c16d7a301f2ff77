"""Input guards on the shape of the text: length and token limit, invisible characters, denied
topics."""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from langdeploy.guards.base import (
    Action,
    Finding,
    Guard,
    GuardContext,
    GuardOptions,
    Stage,
)
from langdeploy.guards.normalize import BIDI, TAG_END, TAG_START, ZERO_WIDTH, normalize


class LengthOptions(GuardOptions):
    max_chars: int | None = Field(32000, ge=1, description="Most characters; null: no limit.")
    max_tokens: int | None = Field(
        None, ge=1, description="Most tokens by the model's tokenizer; null: no limit."
    )


class LengthGuard(Guard):
    """Rejects input longer than a character or token limit (tokens by the model's tokenizer)."""

    name = "length"
    description = "Character and token limit on the input (the model's own tokenizer)."
    default_action: ClassVar[Action] = "block"
    allowed_actions: ClassVar[tuple[Action, ...]] = ("block", "warn")
    Options = LengthOptions
    stages: ClassVar[tuple[Stage, ...]] = ("input", "retrieval")
    scope = "joined"
    lookahead = None

    def scan(self, text: str, ctx: GuardContext) -> list[Finding]:
        assert isinstance(self.options, LengthOptions)
        o = self.options
        if o.max_chars is not None and len(text) > o.max_chars:
            return [Finding("too_many_chars", 0, len(text), score=len(text) / o.max_chars)]
        if o.max_tokens is not None:
            # Without a tokenizer, 4 characters a token is the usual estimate for English.
            # With one: a token is at least one byte, so a text of no more bytes than the
            # limit is under it without tokenizing (most chat messages).
            if not ctx.count_tokens:
                tokens = (len(text) + 3) // 4
            elif len(text) <= o.max_tokens and len(text.encode("utf-8")) <= o.max_tokens:
                tokens = 0
            else:
                tokens = ctx.count_tokens(text)
            if tokens > o.max_tokens:
                return [Finding("too_many_tokens", 0, len(text), score=tokens / o.max_tokens)]
        return []

    def message(self, finding: Finding) -> str:
        assert isinstance(self.options, LengthOptions)
        if finding.category == "too_many_tokens":
            return f"The input is longer than the limit of {self.options.max_tokens} tokens."
        return f"The input is longer than the limit of {self.options.max_chars} characters."


_INVISIBLE = re.compile(
    "[" + re.escape(ZERO_WIDTH + BIDI) + f"{chr(TAG_START)}-{chr(TAG_END)}" + "]+"
)


class InvisibleTextGuard(Guard):
    """Zero-width, bidirectional-override and Unicode tag characters (hidden ASCII)."""

    name = "invisible_text"
    description = "Zero-width, bidi-override and Unicode tag characters; redact strips them."
    default_action: ClassVar[Action] = "redact"
    stages: ClassVar[tuple[Stage, ...]] = ("input", "output", "retrieval")
    lookahead = 0
    redaction = "remove"

    def scan(self, text: str, ctx: GuardContext) -> list[Finding]:
        found = []
        for m in _INVISIBLE.finditer(text):
            tags = any(TAG_START <= ord(c) <= TAG_END for c in m.group())
            found.append(Finding("unicode_tags" if tags else "zero_width", m.start(), m.end()))
        return found

    def message(self, finding: Finding) -> str:
        return f"The text contains invisible characters ({finding.category})."


class Topic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, description="The topic's name, used as the category.")
    keywords: list[str] = Field(default_factory=list, description="Words or phrases.")
    patterns: list[str] = Field(default_factory=list, description="Regular expressions.")

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, value: list[str]) -> list[str]:
        for p in value:
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(
                    f"pattern {p!r} is not a valid regular expression: {exc}"
                ) from None
        return value


class TopicsOptions(GuardOptions):
    topics: list[Topic] = Field(default_factory=list, description="Denied topics.")
    match: Literal["normalized", "raw"] = Field(
        "normalized", description="Match keywords against normalised (de-obfuscated) text."
    )


class DeniedTopicsGuard(Guard):
    """Keywords and regexes from config; keywords match whole words, case- and accent-blind."""

    name = "denied_topics"
    description = "Denied topics: keywords and regexes from guards.yaml."
    default_action: ClassVar[Action] = "block"
    Options = TopicsOptions
    stages: ClassVar[tuple[Stage, ...]] = ("input", "output", "retrieval")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        assert isinstance(self.options, TopicsOptions)
        self._keyword: list[tuple[str, re.Pattern[str]]] = []
        self._regex: list[tuple[str, re.Pattern[str]]] = []
        for topic in self.options.topics:
            if topic.keywords:
                words = "|".join(re.escape(normalize(k)) for k in topic.keywords if k.strip())
                self._keyword.append((topic.name, re.compile(rf"\b(?:{words})\b")))
            for p in topic.patterns:
                self._regex.append((topic.name, re.compile(p, re.IGNORECASE)))

    def scan(self, text: str, ctx: GuardContext) -> list[Finding]:
        found = [
            Finding(name, m.start(), m.end()) for name, rx in self._regex for m in rx.finditer(text)
        ]
        if self._keyword:
            # Keyword hits are on the normalised text, whose offsets differ: redact the span
            # of the raw text only when the keyword also occurs there verbatim.
            norm = normalize(text) if self.options.match == "normalized" else text.lower()  # type: ignore[attr-defined]
            lowered = text.lower()
            for name, rx in self._keyword:
                for m in rx.finditer(norm):
                    i = lowered.find(m.group())
                    span = (i, i + len(m.group())) if i >= 0 else (0, len(text))
                    found.append(Finding(name, *span))
        return found

    def message(self, finding: Finding) -> str:
        return f"The text touches a denied topic ({finding.category})."
