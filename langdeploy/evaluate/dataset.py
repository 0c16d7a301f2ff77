"""The eval dataset: JSON lines, one example per line, checked line by line.

A row is ``{"input": "...", "expected": "..."}``, or gives ``messages`` instead of ``input``, and
may carry ``metric`` (one name or a list), ``tags``, ``id`` and ``schema`` (for ``json_schema``).
A malformed line stops the load with its line number and the fix: no row is dropped silently.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from langdeploy.errors import InputError

# Metrics a row may name; the scoring lives in metrics.py.
METRIC_NAMES = (
    "exact",
    "contains",
    "regex",
    "json",
    "json_schema",
    "f1",
    "rouge_l",
    "embedding",
    "judge",
)
# What a row with an expected answer and no `metric` is scored with.
DEFAULT_METRICS = ("contains", "f1", "rouge_l")
_ROLES = {"user": "human", "human": "human", "assistant": "ai", "ai": "ai", "system": "system"}


class DatasetError(InputError):
    """A dataset file or one of its lines is unusable."""


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: str = Field(..., description="user, assistant or system (or human, ai).")
    content: str

    @model_validator(mode="before")
    @classmethod
    def _langchain_style(cls, value: Any) -> Any:
        # Accept LangChain's {"type": "human", "content": ...} as well as OpenAI's role form.
        if isinstance(value, dict) and "type" in value and "role" not in value:
            value = {**value, "role": value["type"]}
            del value["type"]
        return value

    @field_validator("role")
    @classmethod
    def _known_role(cls, value: str) -> str:
        if value not in _ROLES:
            raise ValueError(f"role {value!r} is not one of {', '.join(sorted(_ROLES))}")
        return _ROLES[value]


class Row(BaseModel):
    """One line of the dataset, as the user writes it."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    input: str | dict[str, Any] | None = None
    messages: list[Message] | None = None
    expected: str | None = None
    metric: str | list[str] | None = None
    tags: list[str] = Field(default_factory=list)
    schema_: dict[str, Any] | None = Field(None, alias="schema")

    @model_validator(mode="after")
    def _check(self) -> Row:
        if (self.input is None) == (self.messages is None):
            raise ValueError("give exactly one of 'input' or 'messages'")
        if self.messages is not None and not self.messages:
            raise ValueError("'messages' is empty")
        for name in self.metrics:
            if name not in METRIC_NAMES:
                raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRIC_NAMES)}")
            if name in ("exact", "contains", "regex", "f1", "rouge_l", "embedding") and (
                self.expected is None
            ):
                raise ValueError(f"metric {name!r} needs an 'expected' value")
            if name == "json_schema" and self.schema_ is None:
                raise ValueError("metric 'json_schema' needs a 'schema' object")
        if not self.metrics:
            raise ValueError("no metric applies: give 'expected', or a 'metric' such as 'json'")
        return self

    @property
    def metrics(self) -> list[str]:
        if self.metric is None:
            if self.expected is None:
                return ["json_schema"] if self.schema_ is not None else []
            return list(DEFAULT_METRICS)
        return [self.metric] if isinstance(self.metric, str) else list(self.metric)


@dataclass
class Example:
    """A checked row with its place in the file and a stable identity for the cache."""

    id: str
    line: int
    row: Row
    key: str = field(default="")

    @property
    def tags(self) -> list[str]:
        return self.row.tags

    @property
    def expected(self) -> str | None:
        return self.row.expected

    @property
    def prompt_text(self) -> str:
        """The user-visible prompt, for reports."""
        if self.row.messages is not None:
            return "\n".join(f"{m.role}: {m.content}" for m in self.row.messages)
        value = self.row.input
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def content_key(row: Row) -> str:
    """A hash of what the model sees and how it is scored: editing a row invalidates its cache."""
    data = row.model_dump(mode="json", by_alias=True, exclude={"tags"})
    blob = json.dumps(data, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


FIX = (
    'Each line must be one JSON object such as {"input": "...", "expected": "..."} '
    '(or "messages": [{"role": "user", "content": "..."}]), with optional "metric", "tags", '
    '"id" and "schema".'
)


def parse_lines(lines: list[str], source: str = "<dataset>") -> list[Example]:
    """Check every line; the first bad one raises a DatasetError naming its line number."""
    examples: list[Example] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text or text.startswith("//"):
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DatasetError(
                f"{source} line {number}: not valid JSON ({exc.msg} at column {exc.colno}).",
                fix=FIX,
            ) from None
        if not isinstance(data, dict):
            raise DatasetError(
                f"{source} line {number}: expected a JSON object, got {type(data).__name__}.",
                fix=FIX,
            )
        try:
            row = Row.model_validate(data)
        except ValidationError as exc:
            raise DatasetError(f"{source} line {number}: {_describe(exc)}.", fix=FIX) from None
        example_id = row.id or f"line-{number}"
        if example_id in seen:
            raise DatasetError(
                f"{source} line {number}: id {example_id!r} is already used on line "
                f"{seen[example_id]}.",
                fix="Give every row its own 'id'.",
            )
        seen[example_id] = number
        examples.append(Example(id=example_id, line=number, row=row, key=content_key(row)))
    if not examples:
        raise DatasetError(f"{source} holds no examples.", fix=FIX)
    return examples


def load_dataset(path: Path) -> list[Example]:
    """Read a JSON-lines dataset; errors name the file and the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(
            f"Dataset file {str(path)!r} does not exist.", fix="Pass the path to a .jsonl file."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(
            f"Dataset file {str(path)!r} could not be read: {exc}.",
            fix="Save it as UTF-8 JSON lines.",
        ) from None
    return parse_lines(text.splitlines(), source=str(path))
