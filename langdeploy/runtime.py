"""load_app(settings) -> AppRuntime: the one way settings and an app directory become an app.

Every command starts here (serve, eval, bench, guards, ingest, deploy render), so they all see the
same thing: the built-in chains and guards, the plugins', then the app's own from ``[app]
modules``; the app's guards.yaml; and the list of served chains, decided once. Nothing else
imports an app's modules or reads its guards.yaml.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from langdeploy.chains.registry import ChainContext, ChainSpec, chain_registry
from langdeploy.deploy.render import deploy_targets
from langdeploy.errors import ConfigError, UnknownNameError
from langdeploy.guards.config import ChainGuards, GuardsFile, build_chain_guards, load_guards_file
from langdeploy.guards.pipeline import Observer
from langdeploy.guards.registry import guard_registry
from langdeploy.models.factory import ModelHandle, build_model
from langdeploy.plugins import Registry, check_hooks
from langdeploy.settings import Settings
from langdeploy.templates.registry import template_registry

REGISTRIES: tuple[Registry[Any], ...] = (
    chain_registry,
    guard_registry,
    template_registry,
    deploy_targets,
)


@dataclass
class AppRuntime:
    """An app, assembled once: its settings, chains, guards and (lazily) its model."""

    settings: Settings
    guards_source: Path | None
    guards_file: GuardsFile
    _model: ModelHandle | None = field(default=None, repr=False)

    # -- chains ----------------------------------------------------------------------------

    @functools.cached_property
    def served(self) -> tuple[str, ...]:
        """The served chains, decided once: server.chains, plus every registered chain whose
        spec says to serve it for these settings (rag, when a collection is configured or
        exists). Checked: each is registered and its guards build."""
        settings = self.settings
        names = list(settings.server.chains)
        for name, spec in chain_registry.items():
            if name not in names and spec.serve_when is not None and spec.serve_when(settings):
                names.append(name)
        if not names:
            raise ConfigError(
                "server.chains is empty, so there is nothing to serve.",
                fix="Set LANGDEPLOY_SERVER__CHAINS=chat (or list several chains).",
            )
        for name in names:
            if name not in chain_registry:
                raise ConfigError(
                    str(UnknownNameError("chain", name, chain_registry.names())),
                    fix="Fix server.chains (LANGDEPLOY_SERVER__CHAINS) or register the chain.",
                )
            self.chain_guards(name)  # a bad guard or option fails at start-up
        return tuple(names)

    def spec(self, name: str) -> ChainSpec:
        """The chain's spec with its policy resolved (inherited through ``extends``)."""
        try:
            return chain_registry.resolve(name)
        except UnknownNameError as exc:
            raise ConfigError(
                str(exc),
                fix="Check the chain name, or add the module that registers it to [app] modules "
                "in langdeploy.toml.",
            ) from None

    def served_specs(self) -> list[ChainSpec]:
        return [self.spec(name) for name in self.served]

    def check_served_guards(self) -> None:
        """When serving: guards.yaml may only name chains that are served (a typo, or a chain
        left out of server.chains, would otherwise go unguarded without a word)."""
        for name in self.guards_file.chains:
            if name not in self.served:
                raise ConfigError(
                    f"{self.guards_source or 'guards.yaml'}: chains.{name}: no chain {name!r} "
                    f"is served here (served: {', '.join(self.served)}).",
                    fix="Fix the chain name or add it to server.chains.",
                )

    def conversation_chain(self, prefer: str) -> str:
        """A chain that takes a conversation (its spec has the OpenAI route): ``prefer`` when it
        does, else the first such served chain, else the first registered one."""
        candidates = [prefer, *self.served, *chain_registry.names()]
        for name in candidates:
            if name in chain_registry and self.spec(name).openai_route:
                return name
        raise ConfigError(
            "No registered chain takes a conversation, so the bias probes have nothing to ask.",
            fix="Register a chain whose ChainSpec sets openai_route=True (the built-in chat does).",
        )

    def needs(self) -> frozenset[str]:
        """What a deployment runs beside the app for the served chains ({"chroma"})."""
        out: frozenset[str] = frozenset()
        for spec in self.served_specs():
            out |= spec.needs or frozenset()
        return out

    def build_chain(self, name: str, ctx: ChainContext, *, observer: Observer | None = None) -> Any:
        """The chain ``name`` over ``ctx``; unless ``ctx.extras`` brings its own, its retrieval
        guards (reporting to ``observer``) are the rag chain's seam."""
        spec = self.spec(name)
        if ctx.extras.get("retrieval_guard") is None:
            guard = self.retrieval_guard(name, observer=observer)
            if guard is not None:
                ctx = dataclasses.replace(ctx, extras={**ctx.extras, "retrieval_guard": guard})
        return spec.factory(ctx)

    def chain_context(
        self, model: ModelHandle, *, extras: dict[str, Any] | None = None
    ) -> ChainContext:
        return ChainContext(
            settings=self.settings,
            model=model.chat_model,
            count_tokens=model.count_tokens,
            n_ctx=model.n_ctx,
            extras=dict(extras or {}),
        )

    # -- the model -------------------------------------------------------------------------

    def model(self) -> ModelHandle:
        """The configured model, built on first use (not loaded: see ``ModelHandle.load``)."""
        if self._model is None:
            self._model = build_model(self.settings.model)
        return self._model

    # -- guards ----------------------------------------------------------------------------

    @property
    def guard_context(self) -> dict[str, Any]:
        m = self.settings.model
        # The input may use the context minus the room kept for the answer.
        return {"system_prompt": m.system_prompt, "max_tokens": max(64, m.n_ctx - m.max_tokens)}

    def chain_guards(self, name: str, *, observer: Observer | None = None) -> ChainGuards:
        """The input, output and retrieval pipelines of chain ``name`` from the app's
        guards.yaml; stages it leaves out get the defaults of the chain's guard profile."""
        profile = self.spec(name).guard_profile or "document"
        return build_chain_guards(
            self.guards_file,
            name,
            source=self.guards_source or "guards.yaml",
            observer=observer,
            context=self.guard_context,
            profile=profile,
        )

    def retrieval_guard(
        self, name: str, *, observer: Observer | None = None
    ) -> Callable[[list[Any]], list[Any]] | None:
        """The chain's retrieval guards as the rag chain's seam (None when it has none)."""
        if not self.settings.guards.enabled:
            return None
        pipeline = self.chain_guards(name, observer=observer).retrieval
        if not pipeline:
            return None

        def guard(chunks: list[Any]) -> list[Any]:
            # Chunks are anything with a `text` field (RetrievedChunk): dropped, or redacted.
            return pipeline.filter_items(
                chunks, lambda c: c.text, lambda c, text: dataclasses.replace(c, text=text)
            )[0]

        return guard


def guards_config_path(settings: Settings) -> Path | None:
    """guards.config, else the app's guards/guards.yaml (or guards.yaml), else the defaults."""
    if settings.guards.config is not None:
        return settings.guards.config
    if settings.app.dir is not None:
        for candidate in (
            settings.app.dir / "guards" / "guards.yaml",
            settings.app.dir / "guards.yaml",
        ):
            if candidate.is_file():
                return candidate
    return None


def import_app_modules(settings: Settings) -> list[ModuleType]:
    """Import ``[app] modules`` and run their hooks, after the built-ins and plugins."""
    if settings.app.dir is not None and str(settings.app.dir) not in sys.path:
        sys.path.insert(0, str(settings.app.dir))
    for registry in REGISTRIES:
        registry.names()  # built-ins and plugins first, whatever the app imports
    modules = []
    for name in settings.app.modules:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(
                f"The app module {name!r} (app.modules in langdeploy.toml) failed to import: {exc}.",
                fix="Check the module name and that the app directory is on the path.",
            ) from None
        check_hooks(module)
        for registry in REGISTRIES:
            registry.load_from(module)
        modules.append(module)
    return modules


def load_app(settings: Settings) -> AppRuntime:
    """Assemble the app that ``settings`` describe: the registries in their fixed order, the
    app's modules, its guards.yaml. Fails now, naming the fix, when a module or the file is
    wrong; ``served`` checks the served chains when first read."""
    import_app_modules(settings)
    source = guards_config_path(settings)
    guards_file = load_guards_file(source)
    for name in guards_file.chains:
        if name not in chain_registry:
            raise ConfigError(
                f"{source or 'guards.yaml'}: chains.{name}: no chain {name!r} is registered "
                f"(chains: {', '.join(chain_registry.names())}).",
                fix="Fix the chain name, or add the module that registers it to [app] modules.",
            )
    return AppRuntime(settings, source, guards_file)
