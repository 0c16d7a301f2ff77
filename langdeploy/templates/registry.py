"""The template registry: a plugin module defines ``register_templates(register)``.

A plugin's template names its own package and the file layers in it::

    def register_templates(register):
        register(AppTemplate(name="support-bot", description="...", chain="support",
                             package="my_plugin", layers=("base", "support_bot")))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from langdeploy.plugins import Registry


@dataclass(frozen=True)
class AppTemplate:
    """A named app scaffold: file layers rendered in order, a later layer's file wins."""

    name: str
    description: str
    # The chain the generated app serves (its own, registered by its chains/ module).
    chain: str
    # The package that holds the layers, and directories inside it, relative to the package.
    package: str
    layers: tuple[str, ...]
    # What the app gets, for `langdeploy templates list`.
    includes: tuple[str, ...] = ()
    # Extra pip extras of langdeploy the app depends on (for example "rag").
    extras: tuple[str, ...] = ("local",)
    # Most answer tokens the app's own tests allow the model (schema output needs more).
    test_max_tokens: int = 16
    # Variables the layers see beside the built-in ones.
    variables: Mapping[str, Any] = field(default_factory=dict)


template_registry: Registry[AppTemplate] = Registry("template", "register_templates")
