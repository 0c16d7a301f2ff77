"""A model card as rows a person reads: labels and units, not field names and raw numbers.

One place, so the CLI (`models show`), the eval report and the server's home page say the same
thing the same way. ``public=True`` leaves out anything that names a place on this machine: a
server's clients have no business knowing where its model file lives.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath
from typing import Any


def file_size(n: int | None) -> str:
    if not n:
        return "?"
    return f"{n / 2**20:.1f} MiB" if n < 2**30 else f"{n / 2**30:.2f} GiB"


def parameters(n: int | None) -> str:
    if not n:
        return "?"
    short = f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"
    return f"{short} ({n:,})"


def public_source(card: Mapping[str, Any]) -> str:
    """The card's source without an absolute path: a local file is named by its file name."""
    source = str(card.get("source") or "")
    path = card.get("path")
    if path and str(path) in source:
        source = source.replace(str(path), PurePath(str(path)).name)
    return source


def card_rows(card: Mapping[str, Any], *, public: bool = False) -> list[tuple[str, str]]:
    """(label, value) rows for a card from ``ModelCard.as_dict()`` (or a cached copy of it)."""
    context = card.get("context_length")
    licence = card.get("license")
    rows = [
        ("description", str(card.get("description") or "")),
        ("source", public_source(card) if public else str(card.get("source") or "")),
        ("architecture", str(card.get("architecture") or "?")),
        ("parameters", parameters(card.get("parameters"))),
        ("quantization", str(card.get("quantization") or "?")),
        ("context length", f"{context:,} tokens" if context else "?"),
        ("licence", str(licence) if licence else "? (not in the GGUF metadata)"),
        ("chat template", "present" if card.get("chat_template") else "absent"),
        ("chat format", str(card.get("chat_format") or "from the GGUF template")),
        ("instruction-tuned", "yes" if card.get("instruct") else "no: a base model"),
        ("file size", file_size(card.get("file_size"))),
    ]
    if not public and card.get("path"):
        rows.insert(2, ("path", str(card["path"])))
    return rows
