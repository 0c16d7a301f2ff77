"""Plugin registries, in the style of simonw/llm: one hook per kind, called with a `register` callback.

A plugin is a module named by an entry point in the group ``langdeploy.plugins``. It may define any
of the hooks ``register_chains``, ``register_guards``, ``register_templates`` and
``register_deploy_targets``. The built-ins register through the same entry points, so a plugin is
never a second-class citizen.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Iterator
from functools import cache
from importlib.metadata import entry_points
from types import ModuleType
from typing import Generic, TypeVar

from langdeploy.errors import LangdeployError, UnknownNameError

T = TypeVar("T")

ENTRY_POINT_GROUP = "langdeploy.plugins"
# Built-ins are listed here as well as in pyproject.toml so that a source checkout that is not
# installed (PYTHONPATH=.) still finds them.
BUILTIN_PLUGINS = (
    "langdeploy.chains.builtin",
    "langdeploy.guards.builtin",
    "langdeploy.templates.builtin",
    "langdeploy.deploy.builtin",
)


class Registry(Generic[T]):
    """Named objects of one kind, filled by plugin hooks on first use."""

    def __init__(self, kind: str, hook: str) -> None:
        self.kind = kind
        self.hook = hook
        self._items: dict[str, T] = {}
        self._loaded = False

    def register(self, item: T, *, name: str | None = None, replace: bool = False) -> None:
        """Register ``item`` under ``name`` (default: ``item.name``)."""
        name = name or str(getattr(item, "name", ""))
        if not name:
            raise LangdeployError(
                f"A {self.kind} was registered without a name.",
                fix="Give it a `name` attribute or pass name=...",
            )
        if name in self._items and not replace:
            raise LangdeployError(
                f"The {self.kind} {name!r} is registered twice.",
                fix="Give one of them another name, or pass replace=True to override on purpose.",
            )
        self._items[name] = item

    def unregister(self, name: str) -> None:
        """Remove ``name`` (a plugin's tests register throw-away items and remove them)."""
        self._ensure_loaded()
        self._items.pop(name, None)

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in plugin_modules():
            hook: Callable[[Callable[..., None]], None] | None = getattr(module, self.hook, None)
            if hook is not None:
                hook(self.register)

    def get(self, name: str) -> T:
        self._ensure_loaded()
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, list(self._items)) from None

    def names(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        self._ensure_loaded()
        yield from sorted(self._items.items())

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return name in self._items


@cache
def plugin_modules() -> tuple[ModuleType, ...]:
    """Built-in plugin modules first, then third-party ones found through entry points."""
    names: list[str] = []
    for name in BUILTIN_PLUGINS:
        if importlib.util.find_spec(name) is not None:
            names.append(name)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.value not in names:
            names.append(ep.value)
    modules = []
    for name in names:
        try:
            modules.append(importlib.import_module(name))
        except ImportError as exc:
            raise LangdeployError(
                f"The plugin module {name!r} failed to import: {exc}.",
                fix="Reinstall the package that provides it, or uninstall it.",
            ) from exc
    return tuple(modules)
