"""What a guard pipeline reports: one event per violation, for the audit log and metrics.

An observer learns which guard flagged what, and a SHA-256 of the text, never the text itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from langdeploy.guards.base import Violation


@dataclass(frozen=True)
class GuardEvent:
    """What an observer learns about a violation: never the text, only its hash."""

    violation: Violation
    text_sha256: str
    chain: str | None = None


Observer = Callable[[GuardEvent], None]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
