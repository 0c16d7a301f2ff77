"""What every check shares: its result row, and finding and running the validator tools.

Checks call ``tools.find_tool`` through this module, so that one stand-in (a test that hides
every validator) reaches all of them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Status = Literal["pass", "fail", "skip"]
VALIDATOR_EXTRA = "pip install 'langdeploy[deploy]'"


@dataclass(frozen=True)
class CheckResult:
    """One row of `langdeploy deploy validate`."""

    check: str
    subject: str
    status: Status
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status != "fail"


def find_tool(name: str) -> str | None:
    """A command from this Python's environment first (its bin/ may not be on PATH), then PATH."""
    local = Path(sys.executable).parent / name
    if local.is_file():
        return str(local)
    return shutil.which(name)


def missing(check: str, subject: str, tool: str, fix: str) -> CheckResult:
    return CheckResult(check, subject, "fail", f"{tool} is not installed. Fix: {fix}")


def run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


def short(text: str, limit: int = 1500) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + " ..."
