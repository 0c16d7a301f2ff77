"""Build the chat model that settings ask for, with what the server needs to manage it."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel

from langdeploy.models import catalog
from langdeploy.models.engine import LlamaEngine
from langdeploy.models.llamacpp import ChatLlamaEngine
from langdeploy.settings import ModelSettings


class ModelHandle(ABC):
    """A chat model plus its lifecycle: load, readiness, admission and token counting."""

    name: str

    @property
    @abstractmethod
    def chat_model(self) -> BaseChatModel: ...

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

    def check_admission(self) -> None:  # noqa: B027 - optional hook with a no-op default
        """Raise a ServiceUnavailable subclass when a new request would be refused."""

    def close(self) -> None:  # noqa: B027 - optional hook with a no-op default
        """Free resources."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "ready": self.ready}


class LocalModel(ModelHandle):
    """A GGUF model in this process, through a :class:`LlamaEngine`."""

    def __init__(self, settings: ModelSettings) -> None:
        path, _entry = catalog.resolve(settings.name)
        self.name = settings.name
        self.path: Path = path
        self.engine = LlamaEngine(path, settings, chat_format=catalog.chat_format_for(settings.name))
        self._chat = ChatLlamaEngine.from_settings(self.engine, settings)

    @property
    def chat_model(self) -> BaseChatModel:
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

    def check_admission(self) -> None:
        self.engine.check_admission()

    def close(self) -> None:
        self.engine.close()

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "backend": "llamacpp",
            "path": str(self.path),
            "ready": self.ready,
            "n_ctx": self.n_ctx,
            "queue_depth": self.engine.queue_depth,
        }


_shared: dict[tuple[Any, ...], ModelHandle] = {}
_shared_lock = threading.Lock()


def build_model(settings: ModelSettings, *, shared: bool = False) -> ModelHandle:
    """The model that settings name. ``shared=True`` reuses one loaded instance per settings
    (tests and the eval harness load a model once per process)."""
    if settings.backend != "llamacpp":
        from langdeploy.errors import ConfigError

        raise ConfigError(
            f"model.backend {settings.backend!r} is not available in this build.",
            fix="Use model.backend = 'llamacpp'.",
        )
    if not shared:
        return LocalModel(settings)
    key = tuple(sorted(settings.model_dump(mode="json").items()))
    with _shared_lock:
        if key not in _shared:
            _shared[key] = LocalModel(settings)
        return _shared[key]
