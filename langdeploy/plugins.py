"""Plugin registries, in the style of simonw/llm: one hook per kind, called with a `register` callback.

A plugin is a module named by an entry point in the group ``langdeploy.plugins``. It may define any
of the hooks in :data:`HOOKS`. The built-ins register through the same hooks, so a plugin is never
a second-class citizen.

Loading order is fixed whatever the import order: the built-ins, then the plugins, then the app
(``[app] modules``, imported by :func:`langdeploy.runtime.load_app`). A registry fills itself on
first use, and a ``register`` call made before that (an app module imported early) first loads the
built-ins and plugins, so it always lands after them. Taking a name that is already registered
needs ``replace=True``; without it the clash names both modules.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
from collections.abc import Callable, Iterator
from functools import cache
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any, Generic, TypeVar

from langdeploy.errors import LangdeployError, UnknownNameError

T = TypeVar("T")

ENTRY_POINT_GROUP = "langdeploy.plugins"
# The built-ins, loaded before any plugin. They are listed here rather than as entry points, so
# that a source checkout that is not installed (PYTHONPATH=.) has them too.
BUILTIN_PLUGINS = (
    "langdeploy.chains.builtin",
    "langdeploy.guards.builtin",
    "langdeploy.templates.builtin",
    "langdeploy.deploy.builtin",
)
HOOKS = ("register_chains", "register_guards", "register_templates", "register_deploy_targets")


def origin_of(item: Any) -> str:
    """The module an item comes from, for clash messages."""
    for obj in (getattr(item, "factory", None), item):
        module = getattr(obj, "__module__", None)
        if isinstance(module, str) and module != "builtins":
            return module
    return "?"


class Registry(Generic[T]):
    """Named objects of one kind, filled by plugin hooks on first use."""

    def __init__(self, kind: str, hook: str) -> None:
        assert hook in HOOKS, hook
        self.kind = kind
        self.hook = hook
        self._items: dict[str, T] = {}
        self._origins: dict[str, str] = {}
        self._loaded = False
        self._loading = False

    def register(
        self,
        item: T,
        *,
        name: str | None = None,
        replace: bool = False,
        origin: str | None = None,
    ) -> None:
        """Register ``item`` under ``name`` (default: ``item.name``).

        Registering the same item again under its name is a no-op (a module imported twice).
        """
        self._ensure_loaded()
        name = name or str(getattr(item, "name", ""))
        if not name:
            raise LangdeployError(
                f"A {self.kind} was registered without a name.",
                fix="Give it a `name` attribute or pass name=...",
            )
        origin = origin or origin_of(item)
        if name in self._items and not replace:
            if self._items[name] == item:
                return
            raise LangdeployError(
                f"The {self.kind} {name!r} is registered twice: by {self._origins[name]} "
                f"and by {origin}.",
                fix="Give one of them another name, or pass replace=True to override on purpose.",
            )
        self._items[name] = item
        self._origins[name] = origin

    def unregister(self, name: str) -> None:
        """Remove ``name`` (a plugin's tests register throw-away items and remove them)."""
        self._ensure_loaded()
        self._items.pop(name, None)
        self._origins.pop(name, None)

    def origin(self, name: str) -> str:
        """The module that registered ``name``."""
        self._ensure_loaded()
        return self._origins[name]

    def _ensure_loaded(self) -> None:
        if self._loaded or self._loading:
            return
        self._loading = True
        try:
            for module in plugin_modules():
                hook: Callable[[Callable[..., None]], None] | None = getattr(
                    module, self.hook, None
                )
                if hook is not None:
                    call_hook(module, hook, self._registrar(module.__name__))
            self._loaded = True
        except BaseException:
            # Never leave a half-filled registry: the next use tries again and fails the same way.
            self._items.clear()
            self._origins.clear()
            raise
        finally:
            self._loading = False

    def _registrar(self, origin: str) -> Callable[..., None]:
        def register(item: T, **kwargs: Any) -> None:
            kwargs.setdefault("origin", origin)
            self.register(item, **kwargs)

        return register

    def load_from(self, module: ModuleType) -> None:
        """Call ``module``'s hook for this registry, if it has one (the app's modules)."""
        self._ensure_loaded()
        hook = getattr(module, self.hook, None)
        if hook is not None:
            call_hook(module, hook, self._registrar(module.__name__))

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


def call_hook(module: ModuleType, hook: Callable[..., Any], register: Callable[..., None]) -> None:
    """Run one plugin hook; a failure names the plugin (a LangdeployError keeps its own text)."""
    try:
        hook(register)
    except LangdeployError:
        raise
    except Exception as exc:
        raise LangdeployError(
            f"The plugin {module.__name__!r} failed in {hook.__name__}: "
            f"{type(exc).__name__}: {exc}.",
            fix="Fix the plugin, or uninstall the package that provides it.",
        ) from exc


def check_hooks(module: ModuleType) -> None:
    """A ``register_*`` function that is not a known hook is a typo that would be ignored."""
    for attr, value in vars(module).items():
        if not attr.startswith("register_") or attr in HOOKS or not inspect.isfunction(value):
            continue
        if value.__module__ != module.__name__:
            continue  # imported from elsewhere, not this module's hook
        close = difflib.get_close_matches(attr, HOOKS, n=1)
        hint = f"Did you mean {close[0]}?" if close else f"The hooks are: {', '.join(HOOKS)}."
        raise LangdeployError(
            f"The plugin {module.__name__!r} defines {attr}, which is not a langdeploy hook.",
            fix=f"{hint} Rename it, or make it private (_{attr}).",
        )


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
            module = importlib.import_module(name)
        except ImportError as exc:
            raise LangdeployError(
                f"The plugin module {name!r} failed to import: {exc}.",
                fix="Reinstall the package that provides it, or uninstall it.",
            ) from exc
        check_hooks(module)
        modules.append(module)
    return tuple(modules)
