"""A model behind an OpenAI-compatible API: vLLM, TGI, llama.cpp's server, Ollama.

Built on langchain-openai's ChatOpenAI, with four changes a self-hosted upstream needs:
errors become :class:`UpstreamUnavailable` (so fallbacks and the 503 path see one type), requests
sent upstream are bounded by ``max_concurrency``, ``max_tokens`` is sent beside
``max_completion_tokens`` (llama.cpp's server reads only the former), and token counts are
estimated locally because tiktoken would download its encodings at run time.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from pydantic import PrivateAttr

from langdeploy.errors import ConfigError, MissingDependencyError, UpstreamUnavailable
from langdeploy.settings import BackendSettings

try:
    import openai
    from langchain_openai import ChatOpenAI
except ImportError:  # pragma: no cover - exercised only without the extra
    ChatOpenAI = None  # type: ignore[assignment,misc]
    openai = None  # type: ignore[assignment]

# Most tokenizers average 3-4 bytes per token on English; 3 over-counts, which is the safe side
# for splitting text to fit a context.
BYTES_PER_TOKEN = 3.0


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN)


def _upstream_error(exc: Exception, base_url: str) -> UpstreamUnavailable:
    return UpstreamUnavailable(
        f"The model server at {base_url} did not answer ({type(exc).__name__}).",
        retry_after=5.0,
        fix="Check that the upstream is running and reachable, or configure model.fallbacks.",
    )


def _is_upstream_failure(exc: Exception) -> bool:
    if openai is None:
        return False
    if isinstance(exc, openai.APIConnectionError | openai.APITimeoutError):
        return True
    return isinstance(exc, openai.APIStatusError) and exc.status_code >= 500


if ChatOpenAI is not None:

    class ChatOpenAICompat(ChatOpenAI):
        """ChatOpenAI for self-hosted OpenAI-compatible servers."""

        max_concurrency: int = 32
        _sync_sem: threading.BoundedSemaphore = PrivateAttr()
        _async_sem: asyncio.Semaphore = PrivateAttr()
        # Told when a request finds the upstream down, so /readyz need not wait for its cache.
        _on_failure: Callable[[], None] | None = PrivateAttr(default=None)

        def on_upstream_failure(self, callback: Callable[[], None]) -> None:
            self._on_failure = callback

        @contextmanager
        def _upstream_errors(self) -> Iterator[None]:
            """An upstream that is down or failing becomes UpstreamUnavailable (one type for
            fallbacks and the 503 path); other errors pass through unchanged."""
            try:
                yield
            except Exception as exc:
                if not _is_upstream_failure(exc):
                    raise
                if self._on_failure is not None:
                    self._on_failure()
                raise _upstream_error(exc, str(self.openai_api_base)) from None

        def model_post_init(self, context: Any) -> None:
            super().model_post_init(context)
            # Per-request sampling (configurable fields) rebuilds the model passing every field,
            # streaming=False included; langchain-core reads an explicit False as "never
            # stream", which would turn each stream into one final chunk. Default is not "off".
            if not self.streaming:
                self.__pydantic_fields_set__.discard("streaming")
            self._sync_sem = threading.BoundedSemaphore(self.max_concurrency)
            self._async_sem = asyncio.Semaphore(self.max_concurrency)

        def _get_request_payload(
            self, input_: LanguageModelInput, *, stop: list[str] | None = None, **kwargs: Any
        ) -> dict[str, Any]:
            payload: dict[str, Any] = super()._get_request_payload(input_, stop=stop, **kwargs)
            if "max_completion_tokens" in payload:
                payload["max_tokens"] = payload["max_completion_tokens"]
            return payload

        def get_num_tokens(self, text: str) -> int:
            return estimate_tokens(text)

        def _generate(
            self,
            messages: list[BaseMessage],
            stop: list[str] | None = None,
            run_manager: CallbackManagerForLLMRun | None = None,
            **kwargs: Any,
        ) -> ChatResult:
            with self._sync_sem, self._upstream_errors():
                return super()._generate(messages, stop, run_manager, **kwargs)

        def _stream(
            self,
            messages: list[BaseMessage],
            stop: list[str] | None = None,
            run_manager: CallbackManagerForLLMRun | None = None,
            **kwargs: Any,
        ) -> Iterator[ChatGenerationChunk]:
            with self._sync_sem, self._upstream_errors():
                yield from super()._stream(messages, stop, run_manager, **kwargs)

        async def _agenerate(
            self,
            messages: list[BaseMessage],
            stop: list[str] | None = None,
            run_manager: AsyncCallbackManagerForLLMRun | None = None,
            **kwargs: Any,
        ) -> ChatResult:
            async with self._async_sem:
                with self._upstream_errors():
                    return await super()._agenerate(messages, stop, run_manager, **kwargs)

        async def _astream(
            self,
            messages: list[BaseMessage],
            stop: list[str] | None = None,
            run_manager: AsyncCallbackManagerForLLMRun | None = None,
            **kwargs: Any,
        ) -> AsyncIterator[ChatGenerationChunk]:
            async with self._async_sem:
                with self._upstream_errors():
                    async for chunk in super()._astream(messages, stop, run_manager, **kwargs):
                        yield chunk


def read_api_key(settings: BackendSettings) -> str:
    """The upstream key from api_key or api_key_file; a placeholder when the upstream needs none."""
    if settings.api_key is not None:
        return settings.api_key.get_secret_value()
    if settings.api_key_file is not None:
        try:
            return settings.api_key_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"model.api_key_file {str(settings.api_key_file)!r} cannot be read: {exc.strerror}.",
                fix="Point it at a readable file that holds the key (a mounted secret).",
            ) from None
    # vLLM and llama.cpp's server accept any key when they run without --api-key.
    return "no-key"


def build_openai_chat(
    settings: BackendSettings, on_failure: Callable[[], None] | None = None
) -> BaseChatModel:
    if ChatOpenAI is None:
        raise MissingDependencyError("langchain_openai", "openai")
    if not settings.base_url:
        raise ConfigError(
            "model.base_url is required for the openai backend.",
            fix="Set LANGDEPLOY_MODEL__BASE_URL=http://host:8000/v1",
        )
    kwargs: dict[str, Any] = {
        "model": settings.name,
        "base_url": settings.base_url,
        "api_key": read_api_key(settings),
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "max_tokens": settings.max_tokens,
        "timeout": settings.timeout_s,
        "max_retries": settings.max_retries,
        "stream_usage": True,
        "max_concurrency": settings.max_concurrency,
        # top_k and repeat_penalty are not in the OpenAI API; vLLM and llama.cpp read them here.
        "extra_body": {"top_k": settings.top_k, "repeat_penalty": settings.repeat_penalty},
    }
    if settings.seed >= 0:
        kwargs["seed"] = settings.seed
    chat = ChatOpenAICompat(**kwargs)
    if on_failure is not None:
        chat.on_upstream_failure(on_failure)
    return chat


class UpstreamProbe:
    """Is the upstream up? GET {base_url}/models, cached briefly so /readyz never hammers it."""

    def __init__(self, settings: BackendSettings, ttl_s: float = 2.0) -> None:
        self.url = str(settings.base_url).rstrip("/") + "/models"
        self.key = read_api_key(settings)
        self.ttl_s = ttl_s
        self._checked = 0.0
        self._ok = False
        self.last_error: str | None = None

    def invalidate(self) -> None:
        """Forget the cached answer: the next check asks the upstream again."""
        self._checked = 0.0

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self._checked < self.ttl_s:
            return self._ok
        import httpx

        try:
            r = httpx.get(self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=2.0)
            self._ok = r.status_code == 200
            self.last_error = None if self._ok else f"GET {self.url} answered {r.status_code}"
        except httpx.HTTPError as exc:
            self._ok = False
            self.last_error = f"GET {self.url} failed: {type(exc).__name__}"
        self._checked = now
        return self._ok
