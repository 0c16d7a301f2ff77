"""Helpers for the deploy tests: an app on disk, the CLI as a user runs it, kustomize output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from langdeploy.cli import app as cli_app
from langdeploy.deploy.validate import find_tool

APP_TOML = """
[server]
chains = ["chat", "summarize"]

[model]
max_tokens = 128

[deploy]
name = "demo"
hostname = "llm.example.com"
image = "registry.example.com/team/demo:1.0"
"""


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # The user's environment must not change what the tests render.
    import os

    for key in list(os.environ):
        if key.startswith("LANGDEPLOY_"):
            monkeypatch.delenv(key)


def make_app(root: Path, toml: str = APP_TOML) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "langdeploy.toml").write_text(textwrap.dedent(toml), encoding="utf-8")
    return root


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    return make_app(tmp_path / "demo-app")


def run_cli(*args: str) -> Result:
    return CliRunner().invoke(cli_app, list(args), catch_exceptions=False)


@pytest.fixture
def render_cli() -> Callable[..., Path]:
    """`langdeploy deploy render` through the CLI; returns the output directory."""

    def _render(app: Path, target: str, *extra: str, out: Path | None = None) -> Path:
        out = out or app / "deploy" / target
        result = run_cli(
            "deploy", "render", "--target", target, "--app-dir", str(app), "--out", str(out), *extra
        )
        assert result.exit_code == 0, result.output
        return out

    return _render


def kubectl() -> str:
    tool = find_tool("kubectl")
    assert tool is not None, "kubectl (with kustomize) is required for these tests"
    return tool


def kustomize(path: Path) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [kubectl(), "kustomize", str(path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if isinstance(doc, dict)]


def kustomize_with(tmp: Path, overlay: Path, *components: Path) -> list[dict[str, Any]]:
    """Build an overlay with components, the way a user's own kustomization would."""
    import os

    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(overlay, tmp)],
                "components": [os.path.relpath(c, tmp) for c in components],
            }
        ),
        encoding="utf-8",
    )
    return kustomize(tmp)


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    matches = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, got {len(matches)}"
    return matches[0]


def read_all(root: Path) -> Iterator[tuple[Path, str]]:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            yield path, path.read_text(encoding="utf-8")


def settings_from_env(env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """The settings an app started with exactly ``env`` loads (a failure is the error)."""
    cwd.mkdir(parents=True, exist_ok=True)
    # A fresh process, so that only these variables (and no test's) shape the settings.
    code = "from langdeploy.settings import load_settings; print(load_settings().model_dump_json())"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LANGDEPLOY_")}
    r = subprocess.run(
        [sys.executable, "-c", code], env={**clean, **env}, cwd=cwd, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])
