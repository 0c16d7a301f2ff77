"""The chain registry: built-in and plugin chains register the same way.

A plugin module defines ``register_chains(register)`` and calls ``register(ChainSpec(...))``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable

from langdeploy.errors import LangdeployError, UnknownNameError
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


GuardProfile = Literal["chat", "document"]


@dataclass(frozen=True)
class ChainSpec:
    """A named chain factory and its policy, declared where the chain is registered.

    Policy fields left as None are inherited from the chain named by ``extends`` (an app chain
    built on ``chat`` gets chat's guards, playground and OpenAI route unless it says otherwise),
    then fall back to the defaults of :data:`POLICY_DEFAULTS`. Read them through
    :meth:`ChainRegistry.resolve`, never on a spec straight from a plugin.
    """

    name: str
    factory: Callable[[ChainContext], Runnable[Any, Any]]
    description: str = ""
    extends: str | None = None
    # A request body's "input" that this chain accepts: bench, smoke tests and docs send it.
    sample_input: dict[str, Any] | None = None
    playground_type: Literal["default", "chat"] | None = None
    # Default guards: "chat" (a person talking) or "document" (texts that may quote orders).
    guard_profile: GuardProfile | None = None
    # Whether /v1/chat/completions serves this chain (chat-shaped input and output only).
    openai_route: bool | None = None
    # Served without being listed in server.chains, when this says so for the settings.
    serve_when: Callable[[Settings], bool] | None = None
    # What a deployment must run beside the app for this chain: {"chroma"}.
    needs: frozenset[str] | None = None


# Inherited through `extends`. serve_when is not: an app's own chain is served when listed.
POLICY_FIELDS = ("sample_input", "playground_type", "guard_profile", "openai_route", "needs")
POLICY_DEFAULTS: dict[str, Any] = {
    "sample_input": None,
    "playground_type": "default",
    "guard_profile": "document",
    "openai_route": False,
    "needs": frozenset(),
}


class ChainRegistry(Registry[ChainSpec]):
    """Chains by name; :meth:`resolve` fills a spec's policy from the chain it extends."""

    def resolve(self, name: str) -> ChainSpec:
        spec = self.get(name)
        seen = [name]
        values = {f: getattr(spec, f) for f in POLICY_FIELDS}
        base = spec.extends
        while base is not None and any(v is None for v in values.values()):
            if base in seen:
                raise LangdeployError(
                    f"The chain {name!r} extends itself through {' -> '.join([*seen, base])}.",
                    fix="Point `extends` at a chain that does not extend this one.",
                )
            seen.append(base)
            try:
                parent = self.get(base)
            except UnknownNameError as exc:
                raise LangdeployError(
                    f"The chain {name!r} extends {base!r}, which is not registered. {exc}",
                    fix="Fix `extends` in its ChainSpec, or install the plugin that has it.",
                ) from None
            for f, v in values.items():
                if v is None:
                    values[f] = getattr(parent, f)
            base = parent.extends
        return replace(
            spec, **{f: POLICY_DEFAULTS[f] if v is None else v for f, v in values.items()}
        )


chain_registry = ChainRegistry("chain", "register_chains")
