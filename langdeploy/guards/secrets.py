"""Secrets: cloud keys, tokens, private keys, and high-entropy values in key=value pairs."""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import ClassVar

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

# (category, pattern); the whole match is the secret unless the pattern has a group 1.
TOKEN_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "aws_access_key",
        re.compile(
            r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA)[A-Z0-9]{16}"
            r"(?![A-Z0-9])"
        ),
    ),
    (
        "github_token",
        re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})"),
    ),
    ("gitlab_token", re.compile(r"\bglpat-[A-Za-z0-9_\-]{20,}")),
    ("slack_token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("slack_webhook", re.compile(r"https://hooks\.slack\.com/services/[A-Za-z0-9/_-]{20,}")),
    ("stripe_key", re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}")),
    ("google_api_key", re.compile(r"\bAIza[0-9A-Za-z_\-]{35}")),
    (
        "openai_key",
        re.compile(r"\bsk-(?:proj-|svcacct-|ant-(?:api|admin)\d{2}-)?[A-Za-z0-9_\-]{20,}"),
    ),
    ("hf_token", re.compile(r"\bhf_[A-Za-z0-9]{30,}")),
    ("npm_token", re.compile(r"\bnpm_[A-Za-z0-9]{36}")),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    ("azure_storage_key", re.compile(r"AccountKey=([A-Za-z0-9+/]{80,}={0,2})")),
    (
        "url_credentials",
        re.compile(r"\b[a-z][a-z0-9+.-]{1,15}://[^\s:/@]{1,64}:([^\s:/@]{3,128})@"),
    ),
)
PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
    r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|$)"
)
# Any PEM block: its type ("OPENSSH PRIVATE KEY") is not known until its header is complete.
PEM_OPEN = re.compile(r"-----BEGIN\b")
PEM_CLOSE = re.compile(r"-----END [^\n]*?-----")
# key=value: anchored on the separator (rare in prose), then the key name is checked backwards.
SEPARATOR = re.compile(r"[\"']?[ \t]*(?:=>|[=:])[ \t]*")
KEY_NAME = re.compile(
    r"(?i)(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[_\-]?key|apikey|access[_\-]?key|"
    r"private[_\-]?key|client[_\-]?secret|auth|credential|session[_\-]?id|signature|sig|key)"
    r"[A-Za-z0-9_.\-]{0,40}$"
)
VALUE = re.compile(r"\"([^\"\s]{4,256})\"|'([^'\s]{4,256})'|([^\s\"',;&]{4,256})")
# Literal markers: a token pattern runs only when one of its markers is in the text.
MARKERS: dict[str, tuple[str, ...]] = {
    "aws_access_key": ("AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AROA"),
    "github_token": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    "gitlab_token": ("glpat-",),
    "slack_token": ("xox",),
    "slack_webhook": ("hooks.slack.com",),
    "stripe_key": ("_live_", "_test_"),
    "google_api_key": ("AIza",),
    "openai_key": ("sk-",),
    "hf_token": ("hf_",),
    "npm_token": ("npm_",),
    "jwt": ("eyJ",),
    "azure_storage_key": ("AccountKey=",),
    "url_credentials": ("://",),
}
PLACEHOLDER = re.compile(
    r"(?i)^(?:<[^>]*>|\$\{?[A-Z_][A-Z0-9_]*\}?|\{\{[^}]*\}\}|%\(?\w+\)?s?|"
    r"(?:your|my|the|some|example|dummy|changeme|placeholder|xxx+|\*+|\.\.\.)[\w\-.]*|.*\*{3,}.*)$"
)
ALL_CAPS_NAME = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$|^[A-Z]+$")
# Code that reads a secret from somewhere is not the secret: os.environ["X"], getenv("X"), ${X}.
CODE_VALUE = re.compile(r"[(\[{]|^\$|^(?:os|env|process|settings|config|self|secrets)\.")


def shannon_entropy(value: str) -> float:
    counts = Counter(value)
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


class SecretsOptions(GuardOptions):
    min_entropy: float = Field(
        3.0, ge=0.0, le=8.0, description="Bits per character for a key=value value to count."
    )
    min_length: int = Field(8, ge=4, le=256, description="Shortest key=value value that counts.")


def find_secrets(text: str, min_entropy: float = 3.0, min_length: int = 8) -> list[Finding]:
    found: list[Finding] = []
    for category, pattern in TOKEN_PATTERNS:
        if not any(marker in text for marker in MARKERS[category]):
            continue
        for m in pattern.finditer(text):
            if pattern.groups:
                found.append(Finding(category, m.start(1), m.end(1), label="SECRET"))
            else:
                found.append(Finding(category, m.start(), m.end(), label="SECRET"))
    if "PRIVATE KEY" in text:
        found += [
            Finding("private_key", m.start(), m.end(), label="PRIVATE_KEY")
            for m in PRIVATE_KEY.finditer(text)
        ]
    if "=" not in text and ":" not in text:
        return found
    for sep in SEPARATOR.finditer(text):
        if not KEY_NAME.search(text, max(0, sep.start() - 48), sep.start()):
            continue
        vm = VALUE.match(text, sep.end())
        if vm is None:
            continue
        group = 1 if vm.group(1) is not None else 2 if vm.group(2) is not None else 3
        value = vm.group(group)
        if len(value) < min_length or PLACEHOLDER.match(value) or CODE_VALUE.search(value):
            continue
        if ALL_CAPS_NAME.match(value):  # YOUR_API_KEY, OPENAI_API_KEY: a name, not a value
            continue
        if shannon_entropy(value) < min_entropy or not re.search(r"\d|[^A-Za-z]", value):
            continue
        found.append(Finding("key_value_secret", vm.start(group), vm.end(group), label="SECRET"))
    return found


def _secret_part(token: str) -> bool:
    """A token that may be (part of) a key, token or key=value still being written: secrets
    carry digits or symbols, prose words are letters; long runs count whatever they hold."""
    t = token.rstrip(".,;!?)]}\"'")
    return len(t) >= 16 or any(not c.isalpha() for c in t)


class SecretsGuard(Guard):
    name = "secrets"
    description = "Cloud keys, API tokens, private keys, high-entropy values in key=value pairs."
    default_action: ClassVar[Action] = "redact"
    Options = SecretsOptions
    stages: ClassVar[tuple[Stage, ...]] = ("input", "output", "retrieval")
    lookahead = 96

    def scan(self, text: str, ctx: GuardContext) -> list[Finding]:
        assert isinstance(self.options, SecretsOptions)
        return find_secrets(text, self.options.min_entropy, self.options.min_length)

    def hold_from(self, text: str) -> int:
        start = open_tail(text, self.lookahead, _secret_part)
        # A private key block is long: hold from its BEGIN line until its END line arrives.
        for m in PEM_OPEN.finditer(text):
            if not PEM_CLOSE.search(text, m.end()):
                start = min(start, m.start())
        return start

    def message(self, finding: Finding) -> str:
        return f"The text contains a secret ({finding.category})."
