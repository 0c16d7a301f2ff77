"""LangChain messages to the OpenAI chat format that llama.cpp and OpenAI servers take."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import BaseMessage

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


def message_text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
    return "".join(parts)


def to_openai_messages(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    out = []
    for m in messages:
        role = getattr(m, "role", None) if m.type == "chat" else _ROLES.get(m.type, "user")
        out.append({"role": role or "user", "content": message_text(m)})
    return out
