"""Output guards: system-prompt leaks (canary and verbatim overlap), JSON-schema validity with one
repair try, maximum length, refusal detection. Toxicity (input and output) is in toxicity.py and
is importable from here too."""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

from pydantic import Field

from langdeploy.guards.base import (
    Action,
    Finding,
    Guard,
    GuardContext,
    GuardOptions,
    GuardResult,
    Stage,
    Violation,
)
from langdeploy.guards.normalize import normalize, strip_accents
from langdeploy.guards.phrases import PhraseStarts
from langdeploy.guards.toxicity import (
    HATE,
    PROFANITY,
    THREAT_SHAPES,
    THREAT_VERBS,
    THREATS,
    TOXIC_PHRASES,
    ToxicityGuard,
    lexicon_hits,
)

# Toxicity and PhraseStarts lived here; importing them from this module keeps working.
__all__ = [
    "HATE",
    "PROFANITY",
    "REFUSAL",
    "THREATS",
    "THREAT_SHAPES",
    "THREAT_VERBS",
    "TOXIC_PHRASES",
    "JSONSchemaGuard",
    "JSONSchemaOptions",
    "LeakOptions",
    "MaxLengthGuard",
    "MaxLengthOptions",
    "PhraseStarts",
    "RefusalGuard",
    "SystemPromptLeakGuard",
    "ToxicityGuard",
    "lexicon_hits",
    "repair_json",
]


class LeakOptions(GuardOptions):
    canaries: list[str] = Field(
        default_factory=list,
        description="Secret strings in the system prompt; one in an answer is a leak.",
    )
    system_prompt: str | None = Field(
        None, description="The system prompt; answers quoting a long run of it leak it."
    )
    min_overlap_words: int = Field(
        8, ge=3, le=200, description="Consecutive words of the system prompt that count as a leak."
    )


class SystemPromptLeakGuard(Guard):
    name = "system_prompt_leak"
    description = "A canary string or a long verbatim run of the system prompt in the answer."
    default_action: ClassVar[Action] = "block"
    Options = LeakOptions
    stages: ClassVar[tuple[Stage, ...]] = ("output",)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        o = self.options
        assert isinstance(o, LeakOptions)
        self._canaries = [c for c in o.canaries if c]
        self._shingles: set[tuple[str, ...]] = set()
        if o.system_prompt:
            words = normalize(o.system_prompt).split()
            n = o.min_overlap_words
            self._shingles = {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}
        self._shingle_starts = PhraseStarts(self._shingles)

    def hold_from(self, text: str) -> int:
        # Words that may begin a run of the system prompt, and a canary's beginning at the very
        # end of the text: only those can still become a leak.
        hold = self._shingle_starts.hold_from(text)
        for canary in self._canaries:
            for k in range(min(len(canary) - 1, len(text)), 0, -1):
                if text.endswith(canary[:k]):
                    hold = min(hold, len(text) - k)
                    break
        return hold

    def scan(self, text: str, ctx: GuardContext) -> list[Finding]:
        found = []
        for canary in self._canaries:
            i = text.find(canary)
            if i >= 0:
                found.append(Finding("canary", i, i + len(canary)))
        if self._shingles:
            assert isinstance(self.options, LeakOptions)
            n = self.options.min_overlap_words
            words = normalize(text).split()
            if any(tuple(words[i : i + n]) in self._shingles for i in range(len(words) - n + 1)):
                found.append(Finding("system_prompt_overlap", 0, len(text)))
        return found

    def message(self, finding: Finding) -> str:
        return "The answer was withheld: it would disclose the system prompt."


class JSONSchemaOptions(GuardOptions):
    json_schema: dict[str, Any] = Field(
        ..., alias="schema", description="The JSON Schema the answer must satisfy."
    )
    repair: bool = Field(True, description="Try one repair (fences, trailing commas, quotes).")


def repair_json(text: str) -> str | None:
    """One repair try: strip code fences and prose, fix trailing commas and single quotes."""
    s = text.strip()
    fence = re.search(r"```(?:json)?\s*([\s\S]*?)```", s)
    if fence:
        s = fence.group(1).strip()
    starts = [i for i in (s.find("{"), s.find("[")) if i >= 0]
    if starts:
        start = min(starts)
        end = max(s.rfind("}"), s.rfind("]"))
        if end > start:
            s = s[start : end + 1]
    s = re.sub(r",\s*([}\]])", r"\1", s)
    if "'" in s and '"' not in s:
        s = s.replace("'", '"')
    s = re.sub(r"\bTrue\b", "true", re.sub(r"\bFalse\b", "false", re.sub(r"\bNone\b", "null", s)))
    try:
        json.loads(s)
    except ValueError:
        return None
    return s


class JSONSchemaGuard(Guard):
    name = "json_schema"
    description = "Structured output must parse as JSON and match a JSON Schema; one repair try."
    default_action: ClassVar[Action] = "block"
    allowed_actions: ClassVar[tuple[Action, ...]] = ("block", "warn")
    Options = JSONSchemaOptions
    stages: ClassVar[tuple[Stage, ...]] = ("output",)
    lookahead = None  # needs the whole answer

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        import jsonschema

        assert isinstance(self.options, JSONSchemaOptions)
        cls = jsonschema.validators.validator_for(self.options.json_schema)
        cls.check_schema(self.options.json_schema)
        self._validator = cls(self.options.json_schema)

    def _problem(self, text: str) -> str | None:
        try:
            value = json.loads(text)
        except ValueError:
            return "not valid JSON"
        error = next(iter(self._validator.iter_errors(value)), None)
        if error is None:
            return None
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return f"does not match the schema at {where}"

    def check(self, text: str, ctx: GuardContext) -> GuardResult:
        problem = self._problem(text)
        if problem is None:
            return GuardResult(True, text)
        assert isinstance(self.options, JSONSchemaOptions)
        if self.options.repair:
            fixed = repair_json(text)
            if fixed is not None and self._problem(fixed) is None:
                # Repaired: not a violation of the contract, but recorded as a warning.
                v = Violation(
                    self.instance_name,
                    "repaired",
                    "warn",
                    ctx.stage,
                    None,
                    1.0,
                    "The answer was repaired into valid JSON.",
                )
                return GuardResult(True, fixed, [v])
        v = Violation(
            self.instance_name,
            "invalid_json",
            self.action,
            ctx.stage,
            None,
            1.0,
            f"The answer is {problem}.",
        )
        return GuardResult(self.action != "block", text, [v])

    def scan(self, text: str, ctx: GuardContext) -> list[Finding]:
        return [] if self._problem(text) is None else [Finding("invalid_json", 0, len(text))]


class MaxLengthOptions(GuardOptions):
    max_chars: int = Field(8000, ge=1, description="Most characters in an answer.")


class MaxLengthGuard(Guard):
    """Answers longer than ``max_chars``: block, warn, or (redact) truncate."""

    name = "max_length"
    description = "Maximum answer length; redact truncates, block rejects."
    default_action: ClassVar[Action] = "redact"
    Options = MaxLengthOptions
    stages: ClassVar[tuple[Stage, ...]] = ("output",)
    lookahead = 0
    redaction = "remove"

    def scan(self, text: str, ctx: GuardContext) -> list[Finding]:
        assert isinstance(self.options, MaxLengthOptions)
        # In a stream the text is a window that starts stream_offset characters into the answer.
        limit = self.options.max_chars - int(ctx.metadata.get("stream_offset", 0))
        limit = max(0, limit)
        return [Finding("too_long", limit, len(text))] if len(text) > limit else []

    def message(self, finding: Finding) -> str:
        assert isinstance(self.options, MaxLengthOptions)
        return f"The answer is longer than {self.options.max_chars} characters."


REFUSAL = re.compile(
    r"\b(?:i(?:'m| am) (?:sorry|afraid),? but i (?:can(?:no|')t|won't|am unable|'m unable)|"
    r"i (?:can(?:no|')t|won't|am not able to|'m not able to|am unable to|'m unable to) "
    r"(?:help|assist|provide|comply|do that|fulfil|fulfill|answer|share)|as an ai(?: language "
    r"model)?,? i (?:can(?:no|')t|don't|do not)|i must (?:decline|refuse)|"
    r"je (?:ne peux pas|suis desole,? mais je ne peux)|lo siento,? (?:pero )?no puedo|"
    r"no puedo (?:ayudar|proporcionar|hacer eso)|es tut mir leid,? (?:aber )?ich kann|"
    r"ich kann (?:dabei )?(?:nicht|leider nicht) helfen)"
)


class RefusalGuard(Guard):
    name = "refusal"
    description = "The model refused (EN/FR/ES/DE); recorded as a warning for monitoring."
    default_action: ClassVar[Action] = "warn"
    allowed_actions: ClassVar[tuple[Action, ...]] = ("warn", "block")
    stages: ClassVar[tuple[Stage, ...]] = ("output",)
    lookahead = None

    def scan(self, text: str, ctx: GuardContext) -> list[Finding]:
        # Apostrophes matter here ("can't"), so only case, accents and curly quotes are folded.
        m = REFUSAL.search(strip_accents(text.lower().replace("\u2019", "'")))
        return [Finding("refusal", 0, len(text))] if m else []

    def message(self, finding: Finding) -> str:
        return "The model declined to answer."
