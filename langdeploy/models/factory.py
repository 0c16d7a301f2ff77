"""Build the chat model that settings ask for, with what the server needs to manage it."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from pathlib import Path, PurePath
from typing import Any

from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import BaseMessage
from langchain_core.runnables import ConfigurableField, Runnable

from langdeploy.errors import ModelNotReady, ServiceUnavailable
from langdeploy.models import catalog
from langdeploy.models.engine import LlamaEngine
from langdeploy.models.llamacpp import ChatLlamaEngine
from langdeploy.settings import BackendSettings, ModelSettings

ChatRunnable = Runnable[LanguageModelInput, BaseMessage]

# Sampling knobs a client may set per request through LangServe's config
# ({"configurable": {"temperature": 0}}) or the OpenAI-compatible endpoint.
SAMPLING_FIELDS = ("temperature", "top_p", "max_tokens", "seed")


def configurable(
    model: BaseChatModel, *, top_k: bool = False, stop_field: str, response_format: bool = False
) -> ChatRunnable:
    """Expose sampling knobs under stable ids, whatever each backend calls the field."""
    fields = {
        name: ConfigurableField(id=name, name=name, description=f"Sampling: {name}")
        for name in SAMPLING_FIELDS + (("top_k",) if top_k else ())
    }
    fields[stop_field] = ConfigurableField(id="stop", name="stop", description="Stop sequences")
    if response_format:
        # llama.cpp compiles it into a grammar: {"type": "json_object", "schema": {...}}.
        fields["response_format"] = ConfigurableField(
            id="response_format",
            name="response_format",
            description='JSON output: {"type": "json_object"} or with a "schema"',
        )
    return model.configurable_fields(**fields)


def public_model_name(name: str) -> str:
    """``name`` without a directory part when it is a path to a model file."""
    # Not any name with a slash: an upstream's model is often a hub id ("org/model").
    if (
        name.endswith(".gguf")
        or PurePath(name).is_absolute()
        or name.startswith(("./", "../", "~"))
    ):
        return PurePath(name).name
    return name


class ModelHandle(ABC):
    """A chat model plus its lifecycle: load, readiness, admission and token counting."""

    name: str
    # The plain chat model, without per-request configurability or fallbacks.
    base_model: ChatRunnable

    @property
    @abstractmethod
    def chat_model(self) -> ChatRunnable:
        """The Runnable that chains pipe into: a chat model, maybe with fallbacks."""

    @property
    @abstractmethod
    def ready(self) -> bool: ...

    @property
    @abstractmethod
    def n_ctx(self) -> int: ...

    @abstractmethod
    def load(self) -> None:
        """Make the model ready (blocking)."""

    @abstractmethod
    def count_tokens(self, text: str) -> int: ...

    @property
    def capacity(self) -> int:
        """Requests that may be in flight (running plus waiting) before new ones get 429."""
        return 64

    def check_admission(self) -> None:  # noqa: B027 - optional hook with a no-op default
        """Raise a ServiceUnavailable subclass when a new request would be refused. Called on
        the event loop for every model call: it must not block."""

    @property
    def retry_after_s(self) -> float:
        """How long a client refused for lack of capacity should wait."""
        return 2.0

    def close(self) -> None:  # noqa: B027 - optional hook with a no-op default
        """Free resources."""

    @property
    def public_name(self) -> str:
        """The name clients see: a catalog name as is, a .gguf path by its file name only
        (where the server keeps its files is none of a client's business)."""
        return public_model_name(self.name)

    def describe(self) -> dict[str, Any]:
        return {"name": self.public_name, "ready": self.ready}

    def not_ready_reason(self) -> str:
        """Why the model is not ready, for /readyz."""
        return f"The model {self.public_name} is still loading."


class LocalModel(ModelHandle):
    """A GGUF model in this process, through a :class:`LlamaEngine`."""

    def __init__(self, settings: BackendSettings, engine: LlamaEngine | None = None) -> None:
        path, _entry = catalog.resolve(settings.name)
        self.name = settings.name
        self.path: Path = path
        self.engine = engine or LlamaEngine(
            path, settings, chat_format=catalog.chat_format_for(settings.name)
        )
        self.base_model = ChatLlamaEngine.from_settings(self.engine, settings)
        self._chat = configurable(
            self.base_model, top_k=True, stop_field="stop_sequences", response_format=True
        )

    @property
    def chat_model(self) -> ChatRunnable:
        return self._chat

    @property
    def ready(self) -> bool:
        return self.engine.ready

    @property
    def n_ctx(self) -> int:
        return self.engine.n_ctx

    def load(self) -> None:
        self.engine.load()

    def count_tokens(self, text: str) -> int:
        return self.engine.count_tokens(text)

    @property
    def capacity(self) -> int:
        # One generating, queue_size waiting.
        return self.engine.settings.queue_size + 1

    def check_admission(self) -> None:
        if not self.ready:
            raise ModelNotReady(
                self.not_ready_reason(),
                retry_after=2.0,
                fix="Retry shortly; /readyz turns 200 when it is ready.",
            )

    @property
    def retry_after_s(self) -> float:
        return self.engine.retry_after_s

    def close(self) -> None:
        self.engine.close()

    def not_ready_reason(self) -> str:
        error = self.engine.load_error
        if error is not None:
            return f"The model {self.public_name} failed to load: {error}"
        return f"The model {self.public_name} is still loading."

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.public_name,
            "backend": "llamacpp",
            "file": self.path.name,
            "ready": self.ready,
            "n_ctx": self.n_ctx,
            "queue_depth": self.engine.queue_depth,
        }


class OpenAIModel(ModelHandle):
    """A model behind an OpenAI-compatible server (vLLM, TGI, llama.cpp's server)."""

    def __init__(self, settings: BackendSettings) -> None:
        from langdeploy.models.openai_compat import (
            UpstreamProbe,
            build_openai_chat,
            estimate_tokens,
        )

        self.name = settings.name
        self.settings = settings
        self._probe = UpstreamProbe(settings)
        self.base_model = build_openai_chat(settings, on_failure=self._probe.invalidate)
        self._chat = configurable(self.base_model, stop_field="stop")
        self._estimate = estimate_tokens

    @property
    def chat_model(self) -> ChatRunnable:
        return self._chat

    @property
    def ready(self) -> bool:
        return self._probe()

    @property
    def n_ctx(self) -> int:
        return self.settings.n_ctx

    def load(self) -> None:
        # Nothing to load; readiness follows the upstream.
        self._probe()

    def count_tokens(self, text: str) -> int:
        return self._estimate(text)

    def not_ready_reason(self) -> str:
        return f"The upstream model server is not answering: {self._probe.last_error}."

    @property
    def capacity(self) -> int:
        return self.settings.max_concurrency + self.settings.queue_size

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.public_name,
            "backend": "openai",
            "base_url": self.settings.base_url,
            "ready": self.ready,
            "upstream_error": self._probe.last_error,
        }


class FallbackModel(ModelHandle):
    """Backends tried in order (``with_fallbacks``): the first that answers serves."""

    def __init__(self, handles: list[ModelHandle]) -> None:
        self.handles = handles
        self.name = handles[0].name
        self.base_model = handles[0].base_model
        # Per-request sampling ids may be declared once per chain, so only the primary is
        # configurable; fallbacks answer with their own settings.
        rest = [h.base_model for h in handles[1:]]
        self._chat: ChatRunnable = handles[0].chat_model.with_fallbacks(
            rest, exceptions_to_handle=(ServiceUnavailable,)
        )

    @property
    def chat_model(self) -> ChatRunnable:
        return self._chat

    @property
    def ready(self) -> bool:
        return any(h.ready for h in self.handles)

    @property
    def n_ctx(self) -> int:
        # Text split for one backend must fit every backend it may fall back to.
        return min(h.n_ctx for h in self.handles)

    def load(self) -> None:
        for h in self.handles:
            h.load()

    def count_tokens(self, text: str) -> int:
        return max(h.count_tokens(text) for h in self.handles)

    def close(self) -> None:
        for h in self.handles:
            h.close()

    def not_ready_reason(self) -> str:
        return " ".join(h.not_ready_reason() for h in self.handles)

    @property
    def capacity(self) -> int:
        return self.handles[0].capacity

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.public_name,
            "ready": self.ready,
            "backends": [h.describe() for h in self.handles],
        }


_engines: dict[tuple[Any, ...], LlamaEngine] = {}
_engines_lock = threading.Lock()
# What decides the loaded weights and context; sampling settings may differ between sharers.
_ENGINE_KEY = ("name", "n_ctx", "n_threads", "n_batch", "n_gpu_layers", "main_gpu", "chat_format",
               "queue_size", "queue_timeout_s")  # fmt: skip


def shared_engine(settings: BackendSettings) -> LlamaEngine:
    key = tuple(getattr(settings, k) for k in _ENGINE_KEY)
    with _engines_lock:
        if key not in _engines:
            path, _entry = catalog.resolve(settings.name)
            _engines[key] = LlamaEngine(
                path, settings, chat_format=catalog.chat_format_for(settings.name)
            )
        return _engines[key]


def _build_one(settings: BackendSettings, shared: bool) -> ModelHandle:
    if settings.backend == "openai":
        return OpenAIModel(settings)
    return LocalModel(settings, engine=shared_engine(settings) if shared else None)


def build_model(settings: ModelSettings | BackendSettings, *, shared: bool = False) -> ModelHandle:
    """The model that settings name, with its fallbacks. ``shared=True`` reuses one loaded
    local model per settings (tests and the eval harness load a model once per process)."""
    primary = _build_one(settings, shared)
    fallbacks = getattr(settings, "fallbacks", [])
    if not fallbacks:
        return primary
    return FallbackModel([primary, *(_build_one(f, shared) for f in fallbacks)])
