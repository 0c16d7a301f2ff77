"""Text normalisation against obfuscation, shared by the injection, topic and toxicity guards.

Attackers write ``I g n o r e``, ``1gn0r3``, full-width letters, Cyrillic look-alikes,
zero-width joiners, Unicode tag characters (invisible ASCII) and base64. Everything here is a
pure function of the text, and fast: str.translate and a handful of compiled regexes.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from functools import lru_cache

ZERO_WIDTH = "\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff\u180e\u00ad\u034f"
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
TAG_START, TAG_END = 0xE0000, 0xE007F

# Cyrillic and Greek letters that look like Latin ones.
CONFUSABLES = str.maketrans(
    "аеорсхуіјѕԁɡһкмтвнАЕОРСХУІЈЅКМТВНαεορτνκιΑΕΟΡΤΝΚΙΒΜΖΗ",
    "aeopcxyijsdghkmtbhAEOPCXYIJSKMTBHaeoptvkiAEOPTNKIBMZH",
)
LEET = str.maketrans(
    {
        "0": "o",
        "1": "i",
        "3": "e",
        "4": "a",
        "5": "s",
        "7": "t",
        "@": "a",
        "$": "s",
        "!": "i",
        "|": "l",
        "€": "e",
        "8": "b",
    }
)
_DROP = str.maketrans("", "", ZERO_WIDTH + BIDI)
# Letters joined by dots, dashes, underscores or stars inside a word: "i-g-n-o-r-e"; then single
# letters separated by single spaces: "i g n o r e" (runs split where two or more spaces are).
_JOINED = re.compile(r"(?<![\w])(?:[^\W_][.\-_*/|]{1,2})+[^\W_](?![\w])")
_SPACED = re.compile(r"(?<!\w)(?<!\w )(?:[^\W_] ){3,}[^\W_](?![\w])")
_SEP = re.compile(r"[ .\-_*/|]+")
# A word with leetspeak inside it ("sh1t", "h@ck"); it ends on a letter or digit, so the "!" of
# "kill you!" stays punctuation instead of becoming an "i".
_LEET_TOKEN = re.compile(r"\b(?=\w*[a-z])(?=\w*[0-9@$!|€])[\w@$!|€]*\w")
_NON_WORD = re.compile(r"[^\w<>|\[\]#:/{}]+")
_B64 = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{16,}={0,2}(?![A-Za-z0-9+/=_-])")
_HEX = re.compile(r"\b(?:[0-9a-fA-F]{2}[ :]?){12,}\b")


_TAGS = re.compile(f"[{chr(TAG_START + 0x20)}-{chr(TAG_START + 0x7E)}]+")
_INVISIBLE = re.compile("[" + re.escape(ZERO_WIDTH + BIDI) + f"{chr(TAG_START)}-{chr(TAG_END)}]")
_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+")


def decode_tags(text: str) -> str:
    """The ASCII hidden in Unicode tag characters (U+E0020..U+E007E), or ''."""
    if text.isascii():
        return ""
    return "".join(
        "".join(chr(ord(c) - TAG_START) for c in m.group()) for m in _TAGS.finditer(text)
    )


def has_invisible(text: str) -> bool:
    return not text.isascii() and _INVISIBLE.search(text) is not None


def strip_accents(text: str) -> str:
    text = text.replace("ß", "ss")
    return _COMBINING.sub("", unicodedata.normalize("NFKD", text))


def _unspace(match: re.Match[str]) -> str:
    return _SEP.sub("", match.group())


@lru_cache(maxsize=64)
def _decode_embedded(text: str, limit: int) -> tuple[str, ...]:
    return tuple(_decode(text, limit))


def decode_embedded(text: str, limit: int = 8) -> list[str]:
    """Readable text hidden in base64 or hex runs (at most ``limit`` runs, one level deep)."""
    return list(_decode_embedded(text, limit))


def _decode(text: str, limit: int) -> list[str]:
    """Readable text hidden in base64 or hex runs (at most ``limit`` runs, one level deep)."""
    out: list[str] = []
    # A base64 run is one token of at least 16 characters: most texts have none to search.
    b64 = _B64.finditer(text) if any(len(w) >= 16 for w in text.split()) else iter(())
    for m in b64:
        token = m.group()
        if len(out) >= limit:
            break
        if token.isalpha() and (token.islower() or token.isupper()):
            continue  # a long plain word, not base64
        padded = token + "=" * (-len(token) % 4)
        try:
            raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            continue
        decoded = _printable(raw)
        if decoded:
            out.append(decoded)
    if len(out) < limit:
        for m in _HEX.finditer(text):
            try:
                raw = bytes.fromhex(re.sub(r"[ :]", "", m.group()))
            except ValueError:
                continue
            decoded = _printable(raw)
            if decoded:
                out.append(decoded)
    return out


def _printable(raw: bytes) -> str:
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError:
        return ""
    if len(s) < 6:
        return ""
    good = sum(ch.isalpha() or ch == " " for ch in s)
    return s if good / len(s) >= 0.8 and " " in s else ""


def normalize(text: str) -> str:
    """Lower-case, accent-free, de-obfuscated text; one space between words. Cached: several
    guards of one pipeline normalise the same text."""
    return _normalized(text)[0]


def looks_spaced(text: str) -> bool:
    """Letters spaced or dotted out one by one ("i g n o r e", "i.g.n.o.r.e"): known from
    normalising, which joins them back."""
    return _normalized(text)[1]


@lru_cache(maxsize=256)
def _normalized(text: str) -> tuple[str, bool]:
    if not text.isascii():
        hidden = decode_tags(text)
        if hidden:
            text = text + " " + hidden
        text = unicodedata.normalize("NFKC", text).translate(_DROP).translate(CONFUSABLES)
        text = strip_accents(text)
    text = text.lower()
    joined_long = False

    def unjoin(match: re.Match[str]) -> str:
        nonlocal joined_long
        letters = _SEP.sub("", match.group())
        joined_long = joined_long or len(letters) >= 4  # "i.g.n.o.r.e", not "e.g"
        return letters

    text = _JOINED.sub(unjoin, text)
    text, spaced = _SPACED.subn(_unspace, text)
    text = _LEET_TOKEN.sub(lambda m: m.group().translate(LEET), text)
    return _NON_WORD.sub(" ", text).strip(), joined_long or spaced > 0


@lru_cache(maxsize=256)
def analysis_text(text: str) -> str:
    """The normalised text plus the normalised content of any base64/hex it carries."""
    extra = decode_embedded(text)
    norm = normalize(text)
    if extra:
        norm = norm + " " + " ".join(normalize(e) for e in extra)
    return norm
