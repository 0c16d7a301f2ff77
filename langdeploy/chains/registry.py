"""The chain registry: built-in and plugin chains register the same way.

A plugin module defines ``register_chains(register)`` and calls ``register(ChainSpec(...))``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable

from langdeploy.plugins import Registry
from langdeploy.settings import Settings


@dataclass
class ChainContext:
    """What a chain factory gets: settings and the parts built once at start-up."""

    settings: Settings
    # A chat model, possibly configurable and wrapped with fallbacks: pipe into it.
    model: Runnable[LanguageModelInput, BaseMessage]
    count_tokens: Callable[[str], int]
    n_ctx: int
    # Parts that only some chains use (a retriever, guards), keyed by name.
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChainSpec:
    """A named chain factory."""

    name: str
    factory: Callable[[ChainContext], Runnable[Any, Any]]
    description: str = ""
    playground_type: Literal["default", "chat"] = "default"


chain_registry: Registry[ChainSpec] = Registry("chain", "register_chains")
