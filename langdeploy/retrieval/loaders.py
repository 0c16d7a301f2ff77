"""Read documents into text: .txt, .md, .html, .pdf (pypdf) and .jsonl.

Each loader returns sections (a PDF page, a JSONL record, or the whole file) so a chunk can say
where it came from. A file that cannot be read raises :class:`UnreadableFile` with the reason;
ingestion reports it and goes on with the rest.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from langdeploy.errors import InputError

SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".jsonl")
# Keys a JSONL record's text may sit under, in order of preference.
JSONL_TEXT_KEYS = ("text", "content", "page_content", "body")


class UnreadableFile(InputError):
    """A file is corrupt, binary, or in a format that is not supported."""


@dataclass
class Section:
    text: str
    # Extra metadata for every chunk of this section (page, record id); scalars only.
    metadata: dict[str, str | int | float | bool] = field(default_factory=dict)


def supported(path: Path) -> bool:
    return path.suffix.lower() in SUFFIXES


def load(path: Path, data: bytes | None = None) -> list[Section]:
    """Sections of ``path``; ``data`` is its bytes when the caller already read them."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise UnreadableFile(
            f"{path}: the format {suffix or '(no suffix)'} is not supported.",
            fix=f"Convert it to one of {', '.join(SUFFIXES)}.",
        )
    if data is None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UnreadableFile(f"{path}: cannot be read ({exc.strerror or exc}).") from None
    if suffix == ".pdf":
        return _pdf(path, data)
    text = _decode(path, data)
    if suffix in (".html", ".htm"):
        return [Section(_html_text(text))]
    if suffix == ".jsonl":
        return _jsonl(path, text)
    return [Section(text)]


def _decode(path: Path, data: bytes) -> str:
    # A NUL byte never occurs in text; it is the cheapest sign of a binary file.
    if b"\x00" in data[:8192]:
        raise UnreadableFile(
            f"{path}: looks like a binary file, not text.",
            fix="Remove it from the input or convert it to text.",
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(
            f"{path}: is not valid UTF-8 (byte {exc.start}).",
            fix="Re-save it as UTF-8.",
        ) from None


def _pdf(path: Path, data: bytes) -> list[Section]:
    try:
        from pypdf import PdfReader
    except ImportError:
        from langdeploy.errors import MissingDependencyError

        raise MissingDependencyError("pypdf", "rag") from None
    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except Exception as exc:  # pypdf raises many types for damaged files
        raise UnreadableFile(f"{path}: is not a readable PDF ({exc}).") from None
    return [Section(text, {"page": n}) for n, text in enumerate(pages, start=1) if text.strip()]


class _TextExtractor(HTMLParser):
    SKIP = frozenset({"script", "style", "noscript", "template", "head"})
    BLOCK = frozenset(
        {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article",
         "pre", "blockquote", "table", "ul", "ol", "title"}
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.depth = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self.SKIP:
            self.depth += 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.depth = max(0, self.depth - 1)
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.depth:
            self.parts.append(data)


def _html_text(html: str) -> str:
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)


def _jsonl(path: Path, text: str) -> list[Section]:
    sections = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UnreadableFile(
                f"{path}: line {n} is not valid JSON ({exc.msg}).",
                fix="Each line must be one JSON object with a 'text' field.",
            ) from None
        if isinstance(record, str):
            body: Any = record
            record = {}
        elif isinstance(record, dict):
            body = next(
                (record[k] for k in JSONL_TEXT_KEYS if isinstance(record.get(k), str)), None
            )
        else:
            body = None
        if body is None:
            raise UnreadableFile(
                f"{path}: line {n} has no text field.",
                fix=f"Give each record one of the keys {', '.join(JSONL_TEXT_KEYS)}.",
            )
        meta: dict[str, str | int | float | bool] = {"line": n}
        if isinstance(record.get("id"), str | int):
            meta["record"] = str(record["id"])
        sections.append(Section(body, meta))
    return sections
