"""The results cache: one JSON line per generation, keyed by (model, example, repeat, params).

Lines are appended and flushed as each generation finishes, so an interrupted run keeps what it
had and the next run continues where it stopped. A torn last line (the process died while writing
it) is skipped and that generation simply runs again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from langdeploy.errors import LangdeployError

CACHE_VERSION = 1


def cache_key(**parts: Any) -> str:
    blob = json.dumps({"v": CACHE_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResultCache:
    """Append-only JSON lines on disk, read into memory once."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._rows: dict[str, dict[str, Any]] = {}
        self.torn_lines = 0
        # A torn last line has no newline; the next append must not glue itself onto it.
        self._needs_newline = False
        if path is not None and path.is_file():
            text = path.read_text(encoding="utf-8")
            self._needs_newline = bool(text) and not text.endswith("\n")
            for line in text.splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    self.torn_lines += 1
                    continue
                if isinstance(row, dict) and "key" in row:
                    self._rows[row["key"]] = row

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, key: str) -> dict[str, Any] | None:
        return self._rows.get(key)

    def put(self, key: str, record: dict[str, Any]) -> None:
        row = {"key": key, **record}
        self._rows[key] = row
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                if self._needs_newline:
                    fh.write("\n")
                    self._needs_newline = False
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise LangdeployError(
                f"Could not write the eval cache {self.path}: {exc}.",
                fix="Check the --out directory is writable, or pass --no-cache.",
            ) from None
