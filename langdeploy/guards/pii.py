"""PII: emails, international phone numbers, payment cards (Luhn), IBANs (mod 97), national IDs
(US SSN, UK NINO, Spanish DNI with its check letter), IPv4 and IPv6.

Every pattern is validated after the regex matches (checksums, ranges, context words) so that
order numbers, ISBNs, version strings, dates and tracking numbers are left alone.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import Field

from langdeploy.guards.base import (
    Action,
    Finding,
    Guard,
    GuardContext,
    GuardOptions,
    Stage,
    open_tail,
)

PII_KINDS = ("email", "phone", "card", "iban", "ssn", "national_id", "ipv4", "ipv6")

EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,63})@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
    r"[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])"
)
# A phone number: digits in groups separated by spaces, dots or dashes, optionally with a
# (area) part. It counts only with a leading +/00 country code, or a phone word close before it.
PHONE = re.compile(
    r"(?<![\w+])(?:(?:\+|00)\d{1,3}[\s.\-]?)?(?:\(\d{1,5}\)[\s.\-]?)?\d{1,8}(?:[\s.\-]\d{1,8}){0,6}"
    r"(?![\w])"
)
PHONE_CONTEXT = re.compile(
    r"(?i)(?:phone|tel(?:e(?:phone|fon|fono))?|t[ée]l[ée]phone|mobile?|cell(?:ular)?|call|ring|"
    r"text|whatsapp|fax|portable|handy|m[oó]vil|llam[ae]|appel(?:ez|er)?|anruf(?:en)?|"
    r"nummer|num[ée]ro|n[uú]mero|contact|reach)\b[^\n\d+]{0,24}$"
)
# A run of 13-19 digits, not part of a longer run (tracking numbers have 20-22).
CARD = re.compile(r"(?<![\w-])(?<!\d[ \-])\d(?:[ \-]?\d){12,18}(?![\w-])(?![ \-]\d)")
IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}(?![A-Za-z0-9])")
SSN = re.compile(r"(?<![\w-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w-])")
SSN_BARE = re.compile(r"(?i)\b(?:ssn|social security(?: number)?)\b\D{0,12}(\d{9})\b")
NINO = re.compile(
    r"(?<![A-Za-z0-9])(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z]{2}"
    r"(?:\s?\d{2}){3}\s?[A-D](?![A-Za-z0-9])"
)
DNI = re.compile(r"(?<![A-Za-z0-9])(\d{8})-?([A-Z])(?![A-Za-z0-9])")
DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
IPV4 = re.compile(
    r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
    r"(?![\w.]|\.\d)"
)
IPV4_NOT_AFTER = re.compile(r"(?i)(?:\bv|version|ver\.?|release|build|firmware|oid)\s*:?\s*$")
IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?:%\w+)?(?![\w:])")

IBAN_LENGTHS = {
    "AD": 24,
    "AE": 23,
    "AL": 28,
    "AT": 20,
    "AZ": 28,
    "BA": 20,
    "BE": 16,
    "BG": 22,
    "BH": 22,
    "BR": 29,
    "CH": 21,
    "CR": 22,
    "CY": 28,
    "CZ": 24,
    "DE": 22,
    "DK": 18,
    "DO": 28,
    "EE": 20,
    "EG": 29,
    "ES": 24,
    "FI": 18,
    "FO": 18,
    "FR": 27,
    "GB": 22,
    "GE": 22,
    "GI": 23,
    "GL": 18,
    "GR": 27,
    "GT": 28,
    "HR": 21,
    "HU": 28,
    "IE": 22,
    "IL": 23,
    "IQ": 23,
    "IS": 26,
    "IT": 27,
    "JO": 30,
    "KW": 30,
    "KZ": 20,
    "LB": 28,
    "LI": 21,
    "LT": 20,
    "LU": 20,
    "LV": 21,
    "MC": 27,
    "MD": 24,
    "ME": 22,
    "MK": 19,
    "MR": 27,
    "MT": 31,
    "MU": 30,
    "NL": 18,
    "NO": 15,
    "PK": 24,
    "PL": 28,
    "PS": 29,
    "PT": 25,
    "QA": 29,
    "RO": 24,
    "RS": 22,
    "SA": 24,
    "SE": 24,
    "SI": 19,
    "SK": 24,
    "SM": 27,
    "TN": 24,
    "TR": 26,
    "UA": 29,
    "VG": 24,
    "XK": 20,
}


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_brand_ok(digits: str) -> bool:
    """Issuer prefixes of the major networks, so random Luhn-valid numbers rarely pass."""
    n = len(digits)
    p2, p4 = int(digits[:2]), int(digits[:4])
    if digits[0] == "4":
        return n in (13, 16, 19)
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return n == 16
    if p2 in (34, 37):
        return n == 15
    if digits.startswith(("6011", "65")) or 644 <= int(digits[:3]) <= 649:
        return n in (16, 19)
    if p2 == 35:
        return 16 <= n <= 19
    if p2 in (36, 38, 39) or 300 <= int(digits[:3]) <= 305:
        return 14 <= n <= 19
    return digits.startswith("62") and 16 <= n <= 19


def iban_ok(candidate: str) -> bool:
    iban = candidate.replace(" ", "")
    if IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    moved = iban[4:] + iban[:4]
    number = "".join(str(int(ch, 36)) for ch in moved)
    return int(number) % 97 == 1


def _phone_ok(text: str, start: int, value: str) -> bool:
    if len(value) < 7:
        return False
    digits = sum(c.isdigit() for c in value)
    if not 7 <= digits <= 15:
        return False
    if value.startswith("+"):
        return digits >= 8
    if _INTL_00.match(value):  # 00 + country code, e.g. 0044 20 ...
        return digits >= 10
    # Dates (2024-03-15, 15.03.2024) and versions (1.2.3) have few digits per group and no
    # phone word before them; a national number needs that context.
    before = text[max(0, start - 40) : start]
    return bool(PHONE_CONTEXT.search(before)) or bool(_AREA_PHONE.fullmatch(value))


_INTL_00 = re.compile(r"00[1-9]\d{0,2}[\s.\-]")
_AREA_PHONE = re.compile(r"\(\d{2,5}\)[\s.\-]?\d{3,4}[\s.\-]?\d{3,4}")


class PIIOptions(GuardOptions):
    kinds: list[Literal[PII_KINDS]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: list(PII_KINDS),
        description="Which kinds of PII to look for.",
    )


_DIGITS = re.compile(r"\d+")
_CAPS = re.compile(r"[A-Z]{2}")
_SSN_WORD = re.compile(r"(?i)ssn|social security")
# Every value but an email or IPv6 address holds a digit, and none reaches further than this
# from one ("social security number: " before nine digits, "AB" before a NINO's digits).
DIGIT_REACH = 48
# Digits no further apart than two reaches: one span (its reaches overlap).
_DIGIT_CLUSTER = re.compile(rf"\d(?:\D{{0,{2 * DIGIT_REACH}}}\d)*")


@dataclass
class _Span:
    """A part of the text within DIGIT_REACH of digits, and what digits it holds."""

    lo: int
    hi: int
    digits: int  # in all
    longest: int  # the longest unbroken run
    runs: int


def _digit_spans(text: str) -> list[_Span]:
    """The parts of ``text`` within DIGIT_REACH of a digit, merged: prose without numbers is
    not searched at all by the digit patterns."""
    spans: list[_Span] = []
    for m in _DIGIT_CLUSTER.finditer(text):
        runs = _DIGITS.findall(m.group())
        spans.append(
            _Span(
                max(0, m.start() - DIGIT_REACH),
                min(len(text), m.end() + DIGIT_REACH),
                sum(map(len, runs)),
                max(map(len, runs)),
                len(runs),
            )
        )
    return spans


def _search(
    pattern: re.Pattern[str],
    text: str,
    spans: list[_Span],
    *,
    digits: int = 1,
    longest: int = 1,
    runs: int = 1,
) -> Iterator[re.Match[str]]:
    """Matches of ``pattern`` in the spans that hold enough digits for one (a card has 13, a
    DNI a run of 8, an IPv4 address 4 runs). Lookbehinds still see the text before a span's
    start; nothing a lookahead needs lies past its end, DIGIT_REACH beyond the last digit."""
    for span in spans:
        if span.digits >= digits and span.longest >= longest and span.runs >= runs:
            yield from pattern.finditer(text, span.lo, span.hi)


def find_pii(text: str, kinds: tuple[str, ...] | list[str] = PII_KINDS) -> list[Finding]:
    """Every PII value in ``text`` with its span; validated, never guessed from the regex alone."""
    found: list[Finding] = []
    wanted = set(kinds)
    spans = _digit_spans(text)
    has_digit = bool(spans)
    if "email" in wanted and "@" in text:
        # Only around each "@": the regex from every position of a long text is slow.
        done = 0
        ats = [m.start() for m in re.finditer("@", text)] if text.count("@") < 64 else [-1]
        for at in ats:
            lo, hi = (max(done, at - 70), at + 260) if at >= 0 else (0, len(text))
            for m in EMAIL.finditer(text, lo, min(hi, len(text))):
                if m.start() >= done:
                    found.append(Finding("email", m.start(), m.end(), label="EMAIL"))
                    done = m.end()
    if has_digit and "card" in wanted:
        for m in _search(CARD, text, spans, digits=13):
            digits = re.sub(r"\D", "", m.group())
            if 13 <= len(digits) <= 19 and card_brand_ok(digits) and luhn_ok(digits):
                found.append(Finding("card", m.start(), m.end(), label="CARD"))
    # Cheap tests first: a pattern whose fixed part is absent cannot match.
    caps = has_digit and _CAPS.search(text) is not None  # IBAN, NINO: two capitals
    if caps and "iban" in wanted:
        for m in _search(IBAN, text, spans, digits=2):
            value = m.group().rstrip()
            if iban_ok(value):
                found.append(Finding("iban", m.start(), m.start() + len(value), label="IBAN"))
    if has_digit and "ssn" in wanted:
        if "-" in text:
            found += [
                Finding("ssn", m.start(), m.end(), label="SSN")
                for m in _search(SSN, text, spans, digits=9, runs=3)
            ]
        if _SSN_WORD.search(text):  # as case-blind as SSN_BARE (long s, dotted I)
            found += [
                Finding("ssn", m.start(1), m.end(1), label="SSN")
                for m in _search(SSN_BARE, text, spans, longest=9)
            ]
    if has_digit and "national_id" in wanted:
        if caps:
            found += [
                Finding("national_id", m.start(), m.end(), label="NATIONAL_ID")
                for m in _search(NINO, text, spans, digits=6)
            ]
        for m in _search(DNI, text, spans, longest=8):
            if DNI_LETTERS[int(m.group(1)) % 23] == m.group(2):
                found.append(Finding("national_id", m.start(), m.end(), label="NATIONAL_ID"))
    if has_digit and "ipv4" in wanted:
        for m in _search(IPV4, text, spans, runs=4):
            if not IPV4_NOT_AFTER.search(text[max(0, m.start() - 12) : m.start()]):
                found.append(Finding("ipv4", m.start(), m.end(), label="IP"))
    if "ipv6" in wanted and ("::" in text or text.count(":") >= 7):
        for m in IPV6.finditer(text):
            value = m.group()
            if value.count(":") < 2 or not re.search(r"[0-9A-Fa-f]{1,4}", value):
                continue
            if "::" not in value and value.count(":") != 7:
                continue
            try:
                ipaddress.IPv6Address(value.split("%")[0])
            except ValueError:
                continue
            found.append(Finding("ipv6", m.start(), m.end(), label="IP"))
    if has_digit and "phone" in wanted:
        taken = [(f.start, f.end) for f in found]
        for m in _search(PHONE, text, spans, digits=7):
            value = m.group()
            if not _phone_ok(text, m.start(), value):
                continue
            if not any(s < m.end() and m.start() < e for s, e in taken):
                found.append(Finding("phone", m.start(), m.end(), label="PHONE"))
    return found


def _value_part(token: str) -> bool:
    """A token that may be part of a value still being written: digit groups, an email, IBAN
    letter groups and NINO letters (short upper-case runs), lone separators."""
    t = token.rstrip(".,;!?)]}\"'")
    return (
        any(c.isdigit() for c in t)
        or "@" in t
        or (t.isalpha() and t.isupper() and len(t) <= 4)
        or (bool(t) and all(c in "+-().:/" for c in t))
    )


class PIIGuard(Guard):
    name = "pii"
    description = (
        "Emails, phone numbers, payment cards (Luhn), IBANs (mod 97), national IDs, IP addresses."
    )
    default_action: ClassVar[Action] = "redact"
    Options = PIIOptions
    stages: ClassVar[tuple[Stage, ...]] = ("input", "output", "retrieval")
    lookahead = 48  # longer than any value's tail that could still change its verdict

    def scan(self, text: str, ctx: GuardContext) -> list[Finding]:
        assert isinstance(self.options, PIIOptions)
        return find_pii(text, self.options.kinds)

    def hold_from(self, text: str) -> int:
        return open_tail(text, self.lookahead, _value_part)

    def message(self, finding: Finding) -> str:
        return f"The text contains personal data ({finding.category})."
