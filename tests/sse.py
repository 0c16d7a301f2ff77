"""Parse a server-sent-event body into (event, data) pairs."""

from __future__ import annotations

import json
from typing import Any


def parse_sse(body: str) -> list[tuple[str, Any]]:
    events: list[tuple[str, Any]] = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        event, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
        if not block.strip():
            continue
        raw = "\n".join(data)
        try:
            events.append((event, json.loads(raw) if raw else None))
        except json.JSONDecodeError:
            events.append((event, raw))
    return events
