"""The app runtime and the registries: a fixed loading order whatever the import order, explicit
overrides, clashes and broken plugins named, and each chain's policy read from its spec."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from langdeploy import plugins
from langdeploy.chains import ChainSpec, chain_registry
from langdeploy.errors import LangdeployError
from langdeploy.plugins import Registry, check_hooks
from langdeploy.runtime import load_app
from langdeploy.settings import load_settings

REPO = Path(__file__).resolve().parents[1]

# An app whose chain is named chat and whose guard is named pii, both replacing the built-ins.
APP_MODULE = """
from langchain_core.runnables import RunnableLambda
from langdeploy.chains import ChainSpec
from langdeploy.guards.pii import PIIGuard

def app_chat(ctx):
    return RunnableLambda(lambda payload: "the app's chat")

class AppPII(PIIGuard):
    name = "pii"
    description = "The app's own PII guard."

SPEC = ChainSpec(name="chat", factory=app_chat, extends=None, guard_profile="chat")

def register_chains(register):
    register(SPEC, replace={replace})

# The guard registers when the module is imported (as the templates' guards/custom.py does),
# the chain through the hook: both must land after the built-ins.
from langdeploy.guards.registry import guard_registry
guard_registry.register(AppPII, replace={replace})
"""

# Three import orders: the app module imported first (its guard registers before anything
# loaded the built-ins), a registry used before the app loads, and load_app alone.
ORDERS = {
    "app module imported first": "import appmod\n",
    "registries used first": "chain_registry.get('chat'); guard_registry.get('pii')\n",
    "load_app alone": "",
}

PROBE = """
import json, pathlib, sys
sys.path.insert(0, {app_dir!r})
from langdeploy.chains import chain_registry
from langdeploy.guards.registry import guard_registry
from langdeploy.runtime import load_app
from langdeploy.settings import load_settings
try:
{prelude}
    runtime = load_app(load_settings(pathlib.Path({app_dir!r})))
except Exception as exc:
    print(json.dumps({{"error": str(exc)}}))
else:
    chain = runtime.spec("chat")
    print(json.dumps({{
        "chain_module": chain.factory.__module__,
        "chain_origin": chain_registry.origin("chat"),
        "guard_module": guard_registry.get("pii").__module__,
    }}))
"""


def _probe(app_dir: Path, prelude: str) -> dict[str, str]:
    code = PROBE.format(app_dir=str(app_dir), prelude=textwrap.indent(prelude or "pass\n", "    "))
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("LANGDEPLOY_")},
            "PYTHONPATH": str(REPO),
        },
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _app(tmp_path: Path, replace: bool) -> Path:
    app_dir = tmp_path / ("replacing" if replace else "clashing")
    app_dir.mkdir()
    (app_dir / "appmod.py").write_text(APP_MODULE.format(replace=replace))
    (app_dir / "langdeploy.toml").write_text('[app]\nmodules = ["appmod"]\n')
    return app_dir


@pytest.mark.parametrize("order", list(ORDERS))
def test_app_chain_and_guard_replace_the_builtins_in_every_import_order(
    tmp_path: Path, order: str
) -> None:
    result = _probe(_app(tmp_path, replace=True), ORDERS[order])
    assert result == {
        "chain_module": "appmod",
        "chain_origin": "appmod",
        "guard_module": "appmod",
    }


@pytest.mark.parametrize("order", list(ORDERS))
def test_a_clash_without_replace_names_both_modules(tmp_path: Path, order: str) -> None:
    result = _probe(_app(tmp_path, replace=False), ORDERS[order])
    message = result["error"]
    # The guard registers on import, so its clash comes first.
    assert "The guard 'pii' is registered twice" in message
    assert "langdeploy.guards.builtin" in message and "appmod" in message


def _module(name: str, **attrs: object) -> types.ModuleType:
    module = types.ModuleType(name)
    for key, value in attrs.items():
        if callable(value):
            value.__module__ = name  # type: ignore[union-attr]
        setattr(module, key, value)
    return module


def test_a_failing_hook_names_the_plugin_and_leaves_the_registry_unloaded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def register_chains(register: object) -> None:
        raise RuntimeError("boom")

    good = plugins.plugin_modules()[0]
    bad = _module("broken_plugin", register_chains=register_chains)
    monkeypatch.setattr(plugins, "plugin_modules", lambda: (good, bad))
    registry: Registry[ChainSpec] = Registry("chain", "register_chains")
    for _ in range(2):  # the second use fails the same way: nothing was kept
        with pytest.raises(LangdeployError, match=r"broken_plugin.*register_chains.*boom"):
            registry.names()
    assert registry._items == {} and not registry._loaded


def test_a_misspelt_hook_is_an_error() -> None:
    def register_chain(register: object) -> None: ...

    with pytest.raises(LangdeployError) as info:
        check_hooks(_module("typo_plugin", register_chain=register_chain))
    assert "register_chain" in str(info.value) and "register_chains" in info.value.fix


def test_an_app_chain_inherits_the_policy_of_the_chain_it_extends() -> None:
    def factory(ctx: object) -> object:
        raise AssertionError("not built")

    child = ChainSpec(name="test-child-chat", factory=factory, extends="chat")  # type: ignore[arg-type]
    quiet = ChainSpec(
        name="test-quiet-chat",
        factory=factory,  # type: ignore[arg-type]
        extends="chat",
        openai_route=False,
    )
    chain_registry.register(child)
    chain_registry.register(quiet)
    try:
        resolved = chain_registry.resolve("test-child-chat")
        assert resolved.guard_profile == "chat" and resolved.playground_type == "chat"
        assert resolved.openai_route is True
        assert resolved.sample_input == chain_registry.get("chat").sample_input
        assert chain_registry.resolve("test-quiet-chat").openai_route is False
        assert chain_registry.resolve("summarize").guard_profile == "document"
        assert chain_registry.resolve("rag").needs == frozenset({"chroma"})
    finally:
        chain_registry.unregister("test-child-chat")
        chain_registry.unregister("test-quiet-chat")


def test_the_guards_of_an_app_chain_follow_its_profile(tmp_path: Path) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "mychains.py").write_text(
        textwrap.dedent(
            """
            from langdeploy.chains import ChainSpec, chain_registry

            def factory(ctx):
                return chain_registry.get("chat").factory(ctx)

            def register_chains(register):
                register(ChainSpec(name="test-assistant", factory=factory, extends="chat"))
            """
        )
    )
    (app_dir / "langdeploy.toml").write_text(
        '[app]\nmodules = ["mychains"]\n[server]\nchains = ["test-assistant"]\n'
    )
    try:
        runtime = load_app(load_settings(app_dir))
        assert runtime.served == ("test-assistant",)
        guards = runtime.chain_guards("test-assistant")
        # chat's full profile: injection blocks, the system prompt and refusals are watched.
        actions = {g.name: g.action for g in guards.input.guards}
        assert actions["prompt_injection"] == "block"
        assert {"system_prompt_leak", "refusal"} <= {g.name for g in guards.output.guards}
        assert runtime.needs() == frozenset()
    finally:
        chain_registry.unregister("test-assistant")
        sys.modules.pop("mychains", None)
