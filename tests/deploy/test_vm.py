"""VM: cloud-init user data, the hardened systemd units and the Caddy proxy."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from langdeploy.deploy import validate as validate_mod
from langdeploy.deploy.checks import tools as check_tools
from langdeploy.deploy.validate import check_unit, check_user_data, validate_dir
from tests.deploy.conftest import make_app, run_cli, settings_from_env


def unit_entries(text: str) -> dict[str, dict[str, list[str]]]:
    """A systemd unit as section -> key -> values (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def user_data(out: Path) -> dict[str, Any]:
    text = (out / "user-data").read_text()
    assert text.splitlines()[0] == "#cloud-config"
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def written(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["path"]: f for f in data["write_files"]}


@pytest.fixture
def vm_dir(app_dir: Path, render_cli: Callable[..., Path]) -> Path:
    return render_cli(app_dir, "vm")


def test_cloud_config_installs_and_enables_a_hardened_service(vm_dir: Path) -> None:
    data = user_data(vm_dir)
    user = next(u for u in data["users"] if isinstance(u, dict))
    assert user["name"] == "demo" and user["system"] is True
    assert user["shell"] == "/usr/sbin/nologin"
    assert {"python3-venv", "caddy"} <= set(data["packages"])

    files = written(data)
    unit_text = files["/etc/systemd/system/demo.service"]["content"]
    assert unit_text == (vm_dir / "demo.service").read_text()
    service = unit_entries(unit_text)["Service"]
    assert service["User"] == ["demo"]
    assert service["Restart"] == ["on-failure"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
        "PrivateDevices": "yes",
    }.items():
        assert service[key] == [value], key
    assert service["CapabilityBoundingSet"] == [""]
    exec_start = service["ExecStart"][0].split()
    assert exec_start[:2] == ["/opt/demo/venv/bin/langdeploy", "serve"]
    assert exec_start[exec_start.index("--host") + 1] == "127.0.0.1"  # only Caddy faces out

    env_file = files["/etc/demo/demo.env"]
    assert env_file["permissions"] == "0640" and env_file["owner"] == "root:demo"
    env = dict(line.split("=", 1) for line in env_file["content"].splitlines())
    assert env["LANGDEPLOY_MODEL__MAX_TOKENS"] == "128"
    # Files owned by the service user are written after cloud-init creates it.
    assert all(f["defer"] is True for f in data["write_files"])

    commands = [" ".join(map(str, c)) for c in data["runcmd"]]
    assert any("-m venv /opt/demo/venv" in c for c in commands)
    pip = next(c for c in commands if "pip install" in c)
    assert "-DGGML_NATIVE=OFF" in pip and "langdeploy[local]==" in pip
    assert "systemctl enable --now demo.service" in commands


def test_caddy_terminates_tls_and_does_not_buffer_streams(vm_dir: Path) -> None:
    caddy = written(user_data(vm_dir))["/etc/caddy/Caddyfile"]["content"]
    assert caddy == (vm_dir / "Caddyfile").read_text()
    lines = [line.strip() for line in caddy.splitlines() if not line.strip().startswith("#")]
    assert "llm.example.com {" in lines  # a named site: Caddy gets its certificate (TLS)
    assert "reverse_proxy 127.0.0.1:8000 {" in lines
    assert "flush_interval -1" in lines
    assert "read_timeout 3600s" in lines
    assert not any(line.startswith("encode") for line in lines)


def test_gpu_variant_runs_vllm_as_a_second_unit(
    app_dir: Path, render_cli: Callable[..., Path]
) -> None:
    out = render_cli(app_dir, "vm", "--gpu", out=app_dir / "vm-gpu")
    data = user_data(out)
    files = written(data)
    vllm = unit_entries(files["/etc/systemd/system/demo-vllm.service"]["content"])
    assert vllm["Service"]["Restart"] == ["on-failure"]
    assert vllm["Service"]["NoNewPrivileges"] == ["yes"]
    assert "--port 8001" in vllm["Service"]["ExecStart"][0]
    assert "HF_HUB_OFFLINE=1" in vllm["Service"]["ExecStart"][0]
    app_unit = unit_entries(files["/etc/systemd/system/demo.service"]["content"])
    assert "demo-vllm.service" in app_unit["Unit"]["Wants"][0]
    env = dict(line.split("=", 1) for line in files["/etc/demo/demo.env"]["content"].splitlines())
    assert env["LANGDEPLOY_MODEL__BACKEND"] == "openai"
    assert env["LANGDEPLOY_MODEL__BASE_URL"] == "http://127.0.0.1:8001/v1"
    commands = [" ".join(map(str, c)) for c in data["runcmd"]]
    assert "systemctl enable --now demo-vllm.service" in commands

    results = validate_dir(out)
    assert [r for r in results if r.status == "fail"] == []
    verified = {r.subject for r in results if r.check == "systemd-analyze verify"}
    assert verified == {"demo.service", "demo-vllm.service"}


def test_validate_passes_the_rendered_vm(vm_dir: Path) -> None:
    result = run_cli("deploy", "validate", str(vm_dir))
    assert result.exit_code == 0, result.output
    assert "cloud-init schema" in result.output and "systemd-analyze" in result.output


def test_systemd_warnings_fail_validation(tmp_path: Path, vm_dir: Path) -> None:
    # systemd-analyze exits 0 on an unknown key; the warning on stderr must still fail it.
    unit = tmp_path / "demo.service"
    unit.write_text(
        (vm_dir / "demo.service").read_text().replace("[Service]", "[Service]\nRestartt=always")
    )
    result = check_unit(unit, "demo.service")
    assert result.status == "fail"
    assert "Unknown key 'Restartt'" in result.detail


def test_cloud_init_schema_errors_fail_validation(tmp_path: Path, vm_dir: Path) -> None:
    bad = tmp_path / "user-data"
    data = user_data(vm_dir)
    data["write_files"][0]["mode"] = "0644"  # not a write_files key ("permissions" is)
    bad.write_text("#cloud-config\n" + yaml.safe_dump(data))
    [result] = check_user_data(bad, "user-data")
    assert result.status == "fail" and "mode" in result.detail

    no_header = tmp_path / "plain" / "user-data"
    no_header.parent.mkdir()
    no_header.write_text(yaml.safe_dump(user_data(vm_dir)))
    [result] = check_user_data(no_header, "user-data")
    assert result.status == "fail" and "#cloud-config" in result.detail


def test_unit_edited_after_rendering_is_caught(vm_dir: Path) -> None:
    unit = vm_dir / "demo.service"
    unit.write_text(unit.read_text().replace("RestartSec=5", "RestartSec=7"))
    results = validate_dir(vm_dir)
    mismatch = next(r for r in results if r.check == "units in user data")
    assert mismatch.status == "fail" and "differs" in mismatch.detail


def test_vm_needs_a_hostname_for_its_certificate(tmp_path: Path) -> None:
    app = make_app(tmp_path / "nohost", "[server]\nchains = ['chat']\n")
    result = run_cli("deploy", "render", "--target", "vm", "--app-dir", str(app))
    assert result.exit_code == 1
    assert "deploy.hostname" in result.output and "LANGDEPLOY_DEPLOY__HOSTNAME" in result.output
    assert not (app / "deploy").exists()


def test_rag_runs_a_local_chroma_server(tmp_path: Path, render_cli: Callable[..., Path]) -> None:
    app = make_app(
        tmp_path / "rag-vm",
        '[server]\nchains = ["chat", "rag"]\n[deploy]\nhostname = "r.example.com"\n',
    )
    out = render_cli(app, "vm")
    data = user_data(out)
    files = written(data)
    chroma = unit_entries(files["/etc/systemd/system/langdeploy-chroma.service"]["content"])
    exec_start = chroma["Service"]["ExecStart"][0]
    assert "chroma run" in exec_start and "--host 127.0.0.1 --port 8002" in exec_start
    assert chroma["Service"]["ProtectSystem"] == ["strict"]
    env_text = files["/etc/langdeploy/langdeploy.env"]["content"]
    env = dict(line.split("=", 1) for line in env_text.splitlines())
    assert env["LANGDEPLOY_RETRIEVAL__HOST"] == "127.0.0.1"
    assert env["LANGDEPLOY_RETRIEVAL__PORT"] == "8002"
    assert settings_from_env(env, tmp_path / "vm")["retrieval"]["mode"] == "server"
    # systemd strips shell-style quotes from EnvironmentFile values: the JSON list must survive.
    [chains] = shlex.split(f"LANGDEPLOY_SERVER__CHAINS={env['LANGDEPLOY_SERVER__CHAINS']}")
    assert json.loads(chains.split("=", 1)[1]) == ["chat", "rag"]
    app_unit = unit_entries(files["/etc/systemd/system/langdeploy.service"]["content"])
    assert "langdeploy-chroma.service" in app_unit["Unit"]["After"][0]
    commands = [" ".join(map(str, c)) for c in data["runcmd"]]
    assert any("pip install --no-cache-dir chromadb==" in c for c in commands)
    enables = [c for c in commands if c.startswith("systemctl enable --now")]
    assert enables == [
        "systemctl enable --now langdeploy-chroma.service",
        "systemctl enable --now langdeploy.service",
    ]
    assert [r for r in validate_dir(out) if r.status == "fail"] == []


def test_model_file_is_fetched_once_by_the_unit(
    tmp_path: Path, render_cli: Callable[..., Path]
) -> None:
    app = make_app(
        tmp_path / "file-vm",
        """
        [model]
        name = "./models/tiny.gguf"
        [deploy]
        hostname = "f.example.com"
        model_url = "https://models.example.com/tiny.gguf"
        """,
    )
    service = unit_entries((render_cli(app, "vm") / "langdeploy.service").read_text())["Service"]
    dest = "/var/lib/langdeploy/models/tiny.gguf"
    assert service["ExecStartPre"] == [
        f"/opt/langdeploy/venv/bin/langdeploy deploy fetch-model "
        f"https://models.example.com/tiny.gguf {dest}"
    ]
    assert service["TimeoutStartSec"] == ["infinity"]
    assert service["StateDirectory"] == ["langdeploy"]  # /var/lib/langdeploy: writable, kept


def test_model_file_the_service_cannot_read_is_refused(tmp_path: Path) -> None:
    app = make_app(
        tmp_path / "home-vm",
        '[model]\nname = "/home/me/tiny.gguf"\n[deploy]\nhostname = "h.example.com"\n',
    )
    result = run_cli("deploy", "render", "--target", "vm", "--app-dir", str(app))
    assert result.exit_code == 1
    assert "ProtectHome" in result.output and "deploy.model_url" in result.output


def test_upstream_api_key_is_a_systemd_credential(
    tmp_path: Path, render_cli: Callable[..., Path]
) -> None:
    app = make_app(
        tmp_path / "openai-vm",
        """
        [model]
        backend = "openai"
        name = "big-model"
        base_url = "https://llm.example.com/v1"
        [deploy]
        hostname = "o.example.com"
        """,
    )
    out = render_cli(app, "vm")
    service = unit_entries((out / "langdeploy.service").read_text())["Service"]
    assert service["LoadCredential"] == ["model-api-key:/etc/langdeploy/model-api-key"]
    assert "LANGDEPLOY_MODEL__API_KEY_FILE=%d/model-api-key" in service["Environment"]
    env = (out / "langdeploy.env").read_text()
    assert "API_KEY" not in env and "LANGDEPLOY_MODEL__BASE_URL=https://llm.example.com/v1" in env
    assert [r for r in validate_dir(out) if r.status == "fail"] == []


def test_caddyfile_check_is_optional_and_says_so(
    vm_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every check finds its validator through checks.tools: hide them all there.
    monkeypatch.setattr(check_tools, "find_tool", lambda name: None)
    result = validate_mod.check_caddyfile(vm_dir / "Caddyfile", "Caddyfile")
    assert result.status == "skip" and "apt-get install caddy" in result.detail


@pytest.mark.skipif(validate_mod.find_tool("caddy") is None, reason="caddy is optional")
def test_caddy_validates_the_rendered_proxy(vm_dir: Path, tmp_path: Path) -> None:
    assert validate_mod.check_caddyfile(vm_dir / "Caddyfile", "Caddyfile").status == "pass"
    broken = tmp_path / "Caddyfile"
    broken.write_text(
        (vm_dir / "Caddyfile").read_text().replace("flush_interval", "flush_intervall")
    )
    result = validate_mod.check_caddyfile(broken, "Caddyfile")
    assert result.status == "fail" and "flush_intervall" in result.detail
