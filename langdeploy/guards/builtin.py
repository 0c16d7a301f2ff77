"""Registers the built-in guards, exactly as a plugin would (entry point group langdeploy.plugins,
hook ``register_guards``). A plugin registers a Guard subclass with a unique ``name``."""

from __future__ import annotations

from collections.abc import Callable

from langdeploy.guards.injection import PromptInjectionGuard
from langdeploy.guards.output import (
    JSONSchemaGuard,
    MaxLengthGuard,
    RefusalGuard,
    SystemPromptLeakGuard,
)
from langdeploy.guards.pii import PIIGuard
from langdeploy.guards.secrets import SecretsGuard
from langdeploy.guards.text import DeniedTopicsGuard, InvisibleTextGuard, LengthGuard
from langdeploy.guards.toxicity import ToxicityGuard

BUILTIN_GUARDS = (
    LengthGuard,
    PromptInjectionGuard,
    InvisibleTextGuard,
    PIIGuard,
    SecretsGuard,
    DeniedTopicsGuard,
    SystemPromptLeakGuard,
    ToxicityGuard,
    JSONSchemaGuard,
    MaxLengthGuard,
    RefusalGuard,
)


def register_guards(register: Callable[..., None]) -> None:
    for guard in BUILTIN_GUARDS:
        register(guard)
