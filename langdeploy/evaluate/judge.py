"""An optional LLM-as-judge: a local GGUF or any OpenAI-compatible endpoint, never a cloud key by
default.

The judge answers ``Score: N`` (1 to 5) and a one-sentence reason; the score is mapped to [0, 1].
An answer with no score is reported as such (value ``None``), never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import Runnable

from langdeploy.errors import LangdeployError, UpstreamUnavailable
from langdeploy.evaluate.metrics import Score

JUDGE_SYSTEM = (
    "You grade answers. Reply on one line exactly as: Score: N - reason. "
    "N is 1 (wrong or off-topic) to 5 (fully correct and complete)."
)
_SCORE = re.compile(r"score\s*[:=]?\s*\**\s*([1-5])\b", re.IGNORECASE)
_BARE = re.compile(r"^\s*\**\s*([1-5])\b")


def judge_prompt(question: str, expected: str | None, output: str) -> str:
    ref = f"Reference answer:\n{expected}\n\n" if expected else ""
    return (
        f"Question:\n{question}\n\n{ref}Answer to grade:\n{output}\n\n"
        "Grade the answer. Reply as: Score: N - reason."
    )


def parse_verdict(text: str) -> tuple[int | None, str]:
    """The 1-5 score and the judge's reason, from its reply."""
    match = _SCORE.search(text) or _BARE.search(text)
    if match is None:
        return None, text.strip()
    reason = text[match.end() :].strip(" -:*.\n\t") or text.strip()
    return int(match.group(1)), reason


class Judge:
    """Grades outputs by asking a model; ``complete`` sends (system, user) and returns the reply."""

    def __init__(self, name: str, complete: Callable[[str, str], str]) -> None:
        self.name = name
        self._complete = complete

    def judge(self, question: str, expected: str | None, output: str) -> Score:
        try:
            reply = self._complete(JUDGE_SYSTEM, judge_prompt(question, expected, output))
        except LangdeployError as exc:
            return Score("judge", None, f"judge {self.name} failed: {exc}")
        value, reason = parse_verdict(reply)
        if value is None:
            return Score("judge", None, f"judge {self.name} gave no score: {reason[:160]!r}")
        return Score("judge", (value - 1) / 4, f"{self.name}: {value}/5 - {reason[:240]}")


def local_judge(name: str, chat_model: Runnable[LanguageModelInput, BaseMessage]) -> Judge:
    """A judge that runs on a model loaded in this process (a catalog name or a .gguf path)."""

    def complete(system: str, user: str) -> str:
        reply = chat_model.invoke([SystemMessage(content=system), HumanMessage(content=user)])
        return str(reply.content)

    return Judge(name, complete)


def openai_judge(
    base_url: str,
    model: str,
    *,
    api_key: str | None = None,
    timeout_s: float = 60.0,
    max_tokens: int = 96,
    transport: httpx.BaseTransport | None = None,
) -> Judge:
    """A judge behind an OpenAI-compatible API (vLLM, TGI, llama.cpp server, or a hosted one)."""
    url = base_url.rstrip("/") + "/chat/completions"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    client = httpx.Client(timeout=timeout_s, headers=headers, transport=transport)

    def complete(system: str, user: str) -> str:
        body: dict[str, Any] = {
            "model": model,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": user},
            ],
            "temperature": 0,
            "max_tokens": max_tokens,
        }
        try:
            response = client.post(url, json=body)
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(
                f"The judge endpoint {url} did not answer: {exc}.",
                fix="Check --judge-url and that the server is running.",
            ) from None
        if response.status_code != 200:
            raise UpstreamUnavailable(
                f"The judge endpoint {url} answered {response.status_code}: {response.text[:200]}",
                fix="Check --judge-model and the API key.",
            )
        try:
            return str(response.json()["choices"][0]["message"]["content"] or "")
        except (ValueError, KeyError, IndexError, TypeError):
            raise UpstreamUnavailable(
                f"The judge endpoint {url} sent a reply that is not a chat completion.",
                fix="Point --judge-url at an OpenAI-compatible /v1 base URL.",
            ) from None

    return Judge(f"{model}@{base_url}", complete)
