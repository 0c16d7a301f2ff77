"""Output guards: system-prompt leaks (canary and verbatim overlap), toxicity and profanity,
JSON-schema validity with one repair try, maximum length, refusal detection."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from pydantic import Field

from langdeploy.guards.base import (
    TOKEN,
    Action,
    Finding,
    Guard,
    GuardContext,
    GuardOptions,
    GuardResult,
    Stage,
    Violation,
    open_tail,
)
from langdeploy.guards.normalize import normalize, strip_accents


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


class PhraseStarts:
    """Phrases (tuples of normalised words), and where the end of a stream could be the
    beginning of one: output guards hold that back, so a phrase split across pieces is seen
    whole."""

    def __init__(
        self,
        phrases: Iterable[tuple[str, ...]],
        words: Callable[[str], list[str]] = lambda token: normalize(token).split(),
    ) -> None:
        self.words = words  # a token's words, split as the guard's own scan splits them
        self.longest = 0
        self._next: dict[tuple[str, ...], set[str]] = {}  # a phrase's start -> its next words
        for phrase in phrases:
            self.longest = max(self.longest, len(phrase))
            for k in range(len(phrase)):
                self._next.setdefault(phrase[:k], set()).add(phrase[k])

    def _could_begin(self, words: list[str], last_open: bool) -> bool:
        following = self._next.get(tuple(words[:-1]))
        if not following:
            return False
        last = words[-1]
        # The last word, still being written, need only begin a phrase's word.
        return last in following or (last_open and any(w.startswith(last) for w in following))

    def hold_from(self, text: str) -> int:
        if not self._next:
            return len(text)
        tokens = list(TOKEN.finditer(text))[-(self.longest + 1) :]
        flat = [(w, m.start()) for m in tokens for w in self.words(m.group())]
        words = [w for w, _ in flat]
        last_open = not text[-1:].isspace()
        for i, (_, start) in enumerate(flat):
            if len(flat) - i <= self.longest and self._could_begin(words[i:], last_open):
                return start
        return len(text)


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


# A small multilingual lexicon (EN/FR/ES/DE). Entries are matched as whole words on normalised
# text, so "a s s h 0 l e" and "sh1t" count; words that are ordinary in another sense (for
# example "bitch" in dog breeding, "dick" as a name) are left to context and not listed.
PROFANITY = (
    "fuck",
    "fucking",
    "fucked",
    "fucker",
    "motherfucker",
    "shit",
    "shitty",
    "bullshit",
    "asshole",
    "arsehole",
    "bastard",
    "cunt",
    "dickhead",
    "wanker",
    "twat",
    "prick",
    "slut",
    "whore",
    "cocksucker",
    "dumbass",
    "jackass",
    "merde",
    "putain",
    "connard",
    "connasse",
    "salope",
    "encule",
    "enculer",
    "batard",
    "pute",
    "mierda",
    "puta",
    "puto",
    "cabron",
    "gilipollas",
    "pendejo",
    "coño",
    "joder",
    "hijo de puta",
    "scheisse",
    "scheiss",
    "arschloch",
    "wichser",
    "fotze",
    "hurensohn",
    "miststuck",
    "fick",
    "ficken",
)
# Slurs and threats are reported as "hate" or "threat": a stronger category for dashboards.
HATE = (
    "nigger",
    "nigga",
    "faggot",
    "fag",
    "kike",
    "spic",
    "chink",
    "tranny",
    "retard",
    "raghead",
    "wetback",
    "untermensch",
    "sale arabe",
    "sale juif",
    "sudaca",
    "maricon",
)
THREAT_VERBS = "kill murder hurt rape shoot stab"
# Threats in normalised words ("I'm" is "i m" there), a set of alternatives per word. The scan's
# regex and the stream's hold-back (TOXIC_PHRASES) both come from this one list.
THREAT_SHAPES: tuple[tuple[tuple[str, ...], ...], ...] = tuple(
    tuple(tuple(alts.split()) for alts in shape.format(verbs=THREAT_VERBS).split("/"))
    for shape in (
        "i/will ll/{verbs}/you",
        "i/am/going/to/{verbs}/you",
        "i/m/going/to/{verbs}/you",
        "im/going/to/{verbs}/you",
        "gonna/{verbs}/you",
        "kill/yourself",
        "kys",
        "je/vais/te/tuer",
        "te/voy/a/matar",
        "ich/werde bring/dich/um umbringen toten",
        "bring/dich/um",
    )
)
THREATS = re.compile(
    "|".join(
        r"\b" + " ".join(f"(?:{'|'.join(alts)})" for alts in shape) + r"\b"
        for shape in THREAT_SHAPES
    )
)


def _lexicon(words: tuple[str, ...]) -> tuple[frozenset[str], tuple[tuple[str, ...], ...]]:
    """Single words as a set (one lookup per word of the text), phrases as word tuples."""
    singles, phrases = set(), []
    for w in words:
        parts = tuple(normalize(w).split())
        if len(parts) == 1:
            singles.add(parts[0])
        elif parts:
            phrases.append(parts)
    return frozenset(singles), tuple(phrases)


_LEXICONS = (("hate", _lexicon(HATE)), ("profanity", _lexicon(PROFANITY)))


def lexicon_hits(norm: str) -> list[tuple[str, str]]:
    """(category, matched words) for lexicon entries in normalised text."""
    words = norm.split()
    present = set(words)
    hits: list[tuple[str, str]] = []
    for category, (singles, phrases) in _LEXICONS:
        for w in present & singles:
            hits.append((category, w))
        for phrase in phrases:
            if phrase[0] in present:
                n = len(phrase)
                if any(tuple(words[i : i + n]) == phrase for i in range(len(words) - n + 1)):
                    hits.append((category, " ".join(phrase)))
    return hits


_WORD = re.compile(r"\w+")
# The multi-word entries and threats, in normalised words ("I'm" is "i m"): while the end of a
# stream could begin one, it is held back, so the phrase is redacted whole.
TOXIC_PHRASES = PhraseStarts(
    words=lambda token: _WORD.findall(normalize(token)),  # "reply:i'm" holds "i m" too
    phrases=[phrase for _, (_, phrases) in _LEXICONS for phrase in phrases]
    + [words for shape in THREAT_SHAPES for words in itertools.product(*shape)],
)


class ToxicityGuard(Guard):
    name = "toxicity"
    description = "Profanity, slurs and threats from a multilingual lexicon (EN/FR/ES/DE)."
    default_action: ClassVar[Action] = "redact"
    stages: ClassVar[tuple[Stage, ...]] = ("input", "output")

    def hold_from(self, text: str) -> int:
        # The word being written, letters spaced out one by one ("a s s h 0 l e"), and the
        # start of a phrase.
        hold = open_tail(text, self.lookahead or 0, lambda t: len(t.strip(".-*_")) <= 1)
        return min(hold, TOXIC_PHRASES.hold_from(text))

    def scan(self, text: str, ctx: GuardContext) -> list[Finding]:
        norm = normalize(text)
        hits = lexicon_hits(norm)
        hits += [("threat", m.group()) for m in THREATS.finditer(norm)]
        if not hits:
            return []
        found: list[Finding] = []
        for category, word in hits:
            # Redact every raw occurrence when the word is there verbatim; otherwise the whole
            # text (it was obfuscated, so its raw offsets are unknown).
            # Words of the match with any punctuation between them ("i m" is "I'm").
            shape = r"[\W_]*".join(re.escape(w) for w in word.split())
            raw = [m.span() for m in re.finditer(rf"(?i)(?<!\w){shape}(?!\w)", text)]
            if not raw:
                raw = [(0, len(text))]
            found += [Finding(category, a, b, label="REDACTED") for a, b in raw]
        return found

    def message(self, finding: Finding) -> str:
        return f"The text contains abusive language ({finding.category})."


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
