"""The free texts inside a chain's input and output, found and put back in a fixed order.

A value may be a string, LangChain messages (or their dict and tuple forms), documents, dicts,
lists or pydantic models; structural fields (type, role, id...) are never guarded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import BaseMessage
from pydantic import BaseModel

_STRUCTURAL_KEYS = frozenset({"type", "role", "id", "name", "tool_call_id", "run_id"})


def _is_message_dict(value: dict[Any, Any]) -> bool:
    return "content" in value and ("type" in value or "role" in value)


def collect_texts(value: Any) -> list[str]:
    """The free texts inside ``value``, in a fixed order that replace_texts follows."""
    out: list[str] = []
    _walk(value, out.append)
    return out


def _walk(value: Any, visit: Callable[[str], None]) -> None:
    if isinstance(value, str):
        visit(value)
    elif isinstance(value, BaseMessage):
        _walk_content(value.content, visit)
    elif isinstance(value, Document):
        visit(value.page_content)
    elif isinstance(value, dict):
        if _is_message_dict(value):
            _walk_content(value["content"], visit)
            return
        for k, v in value.items():
            if k not in _STRUCTURAL_KEYS:
                _walk(v, visit)
    elif isinstance(value, list | tuple):
        if (
            len(value) == 2
            and isinstance(value[0], str)
            and isinstance(value[1], str)
            and (value[0] in ("human", "user", "ai", "assistant", "system"))
        ):
            visit(value[1])  # a ("human", "text") message tuple
            return
        for v in value:
            _walk(v, visit)
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            if name not in _STRUCTURAL_KEYS:
                _walk(getattr(value, name), visit)


def _walk_content(content: Any, visit: Callable[[str], None]) -> None:
    if isinstance(content, str):
        visit(content)
    elif isinstance(content, list):
        for block in content:
            if isinstance(block, str):
                visit(block)
            elif isinstance(block, dict) and block.get("type") == "text":
                visit(str(block.get("text", "")))


def replace_texts(value: Any, new: Iterator[str]) -> Any:
    """``value`` with its texts (in collect_texts order) replaced by ``new``."""
    if isinstance(value, str):
        return next(new)
    if isinstance(value, BaseMessage):
        return value.model_copy(update={"content": _replace_content(value.content, new)})
    if isinstance(value, Document):
        return value.model_copy(update={"page_content": next(new)})
    if isinstance(value, dict):
        if _is_message_dict(value):
            return {**value, "content": _replace_content(value["content"], new)}
        return {
            k: (v if k in _STRUCTURAL_KEYS else replace_texts(v, new)) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        if (
            len(value) == 2
            and isinstance(value[0], str)
            and isinstance(value[1], str)
            and (value[0] in ("human", "user", "ai", "assistant", "system"))
        ):
            pair = (value[0], next(new))
            return list(pair) if isinstance(value, list) else pair
        items = [replace_texts(v, new) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, BaseModel):
        update = {
            name: replace_texts(getattr(value, name), new)
            for name in type(value).model_fields
            if name not in _STRUCTURAL_KEYS
        }
        return value.model_copy(update=update)
    return value


def _replace_content(content: Any, new: Iterator[str]) -> Any:
    if isinstance(content, str):
        return next(new)
    if isinstance(content, list):
        out: list[Any] = []
        for block in content:
            if isinstance(block, str):
                out.append(next(new))
            elif isinstance(block, dict) and block.get("type") == "text":
                out.append({**block, "text": next(new)})
            else:
                out.append(block)
        return out
    return content
