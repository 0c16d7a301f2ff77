"""Settings from env, .env and langdeploy.toml; the CLI as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from langdeploy.cli import app
from langdeploy.errors import ConfigError
from langdeploy.settings import load_settings

runner = CliRunner()


def test_env_vars_set_nested_fields(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGDEPLOY_MODEL__MAX_TOKENS", "64")
    monkeypatch.setenv("LANGDEPLOY_MODEL__TEMPERATURE", "0")
    monkeypatch.setenv("LANGDEPLOY_SERVER__CHAINS", "chat")
    s = load_settings(app_dir=tmp_path)
    assert (s.model.max_tokens, s.model.temperature, s.server.chains) == (64, 0.0, ["chat"])


def test_bad_value_names_variable_and_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANGDEPLOY_MODEL__TEMPERATURE", "5")
    with pytest.raises(ConfigError) as err:
        load_settings(app_dir=tmp_path)
    message = str(err.value)
    assert "LANGDEPLOY_MODEL__TEMPERATURE" in message
    assert ">= 0.0" in message and "<= 2.0" in message


def test_toml_and_dotenv_layers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "langdeploy.toml").write_text("[model]\nmax_tokens = 99\ntop_k = 5\n")
    (tmp_path / ".env").write_text("LANGDEPLOY_MODEL__TOP_K=7\n")
    s = load_settings(app_dir=tmp_path)
    assert s.model.max_tokens == 99 and s.model.top_k == 7  # .env beats the toml
    assert s.app.dir == tmp_path
    monkeypatch.setenv("LANGDEPLOY_MODEL__TOP_K", "9")
    assert load_settings(app_dir=tmp_path).model.top_k == 9  # the environment beats both


def test_unknown_toml_key_names_key_and_file(tmp_path: Path) -> None:
    (tmp_path / "langdeploy.toml").write_text("[model]\nmax_tokenz = 3\n")
    with pytest.raises(ConfigError) as err:
        load_settings(app_dir=tmp_path)
    assert "max_tokenz" in str(err.value) and "langdeploy.toml" in str(err.value)


def test_models_list_and_show() -> None:
    r = runner.invoke(app, ["models", "list", "--json"])
    assert r.exit_code == 0, r.output
    cards = {c["name"]: c for c in json.loads(r.output)}
    small = cards["smollm2-135m"]
    assert small["architecture"] == "llama" and small["quantization"] == "Q4_1"
    assert small["chat_template"] is True and small["license"] == "apache-2.0"
    assert 100e6 < small["parameters"] < 200e6 and small["file_size"] > 50e6
    gemma = cards["gemma3-270m"]
    assert gemma["instruct"] is False and gemma["chat_template"] is False
    assert gemma["chat_format"] == "gemma"
    r = runner.invoke(app, ["models", "show", "smollm2-135m"])
    assert r.exit_code == 0 and "GPU offload" in r.output and "Q4_1" in r.output


def test_unknown_model_lists_known_names() -> None:
    r = runner.invoke(app, ["models", "show", "llama-9000"])
    assert r.exit_code == 1
    assert "smollm2-135m" in r.output and "gemma3-270m" in r.output


def test_model_path_that_is_not_gguf(tmp_path: Path) -> None:
    bogus = tmp_path / "x.gguf"
    bogus.write_bytes(b"not a model at all")
    r = runner.invoke(app, ["models", "show", str(bogus)])
    assert r.exit_code == 1 and "not a GGUF file" in r.output


def test_serve_refuses_bad_settings_without_traceback(tmp_path: Path) -> None:
    env = {**os.environ, "LANGDEPLOY_MODEL__TEMPERATURE": "5"}
    r = subprocess.run(
        [sys.executable, "-m", "langdeploy.cli", "serve"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 1
    assert "LANGDEPLOY_MODEL__TEMPERATURE" in r.stderr and "Traceback" not in r.stderr
    env = {**os.environ, "LANGDEPLOY_SERVER__CHAINS": "chat,nope"}
    r = subprocess.run(
        [sys.executable, "-m", "langdeploy.cli", "serve"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 1 and "Unknown chain 'nope'" in r.stderr and "chat" in r.stderr
