"""Toxicity: profanity, slurs and threats from a multilingual lexicon (EN/FR/ES/DE), on input and
output, redacted word by word when the word is there verbatim."""

from __future__ import annotations

import itertools
import re
from typing import ClassVar

from langdeploy.guards.base import Action, Finding, Guard, GuardContext, Stage, open_tail
from langdeploy.guards.normalize import normalize
from langdeploy.guards.phrases import PhraseStarts

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
