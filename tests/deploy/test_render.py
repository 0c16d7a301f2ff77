"""The renderer and the CLI around it: targets, bad input, secrets, atomic output, model fetch."""

from __future__ import annotations

import hashlib
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from langdeploy.deploy import DeployTarget, deploy_targets, render, render_files
from langdeploy.deploy.checks import tools as check_tools
from langdeploy.deploy.validate import validate_dir
from langdeploy.errors import ConfigError, LangdeployError, UnknownNameError
from langdeploy.settings import load_settings
from tests.deploy.conftest import make_app, read_all, run_cli

REPO = Path(__file__).resolve().parents[2]


def test_targets_register_through_the_plugin_hook() -> None:
    assert {"docker", "compose", "k8s", "vm"} <= set(deploy_targets.names())
    result = run_cli("deploy", "targets")
    assert result.exit_code == 0
    for name in ("docker", "compose", "k8s", "vm"):
        assert name in result.output


def test_python_api_renders_and_validates(app_dir: Path, tmp_path: Path) -> None:
    settings = load_settings(app_dir)
    out, files = render(settings, "k8s", tmp_path / "k8s")
    assert out == (tmp_path / "k8s").resolve()
    assert "base/deployment.yaml" in files and (out / "base" / "deployment.yaml").is_file()
    assert all(r.ok for r in validate_dir(out))
    # In memory, the same files and text.
    in_memory = render_files(settings, "k8s")
    assert sorted(in_memory) == files
    assert in_memory["base/deployment.yaml"] == (out / "base" / "deployment.yaml").read_text()


def test_default_output_is_the_apps_deploy_folder(app_dir: Path) -> None:
    result = run_cli("deploy", "render", "--target", "docker", "--app-dir", str(app_dir))
    assert result.exit_code == 0, result.output
    assert (app_dir / "deploy" / "docker" / "Dockerfile").is_file()


def test_render_from_inside_the_app_like_a_user(app_dir: Path) -> None:
    # The installed command, run in the app directory: settings are found from the cwd.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANGDEPLOY_")}
    env["PYTHONPATH"] = str(REPO)
    cmd = [sys.executable, "-c", "from langdeploy.cli import main; main()", "deploy"]
    proc = subprocess.run(
        [*cmd, "render", "--target", "k8s"],
        cwd=app_dir, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (app_dir / "deploy" / "k8s" / "base" / "deployment.yaml").is_file()
    assert "kubectl apply -k deploy/k8s" in proc.stdout
    proc = subprocess.run(
        [*cmd, "validate", "deploy/k8s"],
        cwd=app_dir, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "checks passed" in proc.stdout


def test_unknown_target_names_the_known_ones(app_dir: Path) -> None:
    result = run_cli("deploy", "render", "--target", "helm", "--app-dir", str(app_dir))
    assert result.exit_code == 1
    assert "Unknown deploy target 'helm'" in result.output
    assert "compose, docker, k8s, vm" in result.output
    with pytest.raises(UnknownNameError):
        render(load_settings(app_dir), "helm")


def test_docker_has_no_gpu_variant(app_dir: Path) -> None:
    result = run_cli("deploy", "render", "-t", "docker", "--gpu", "--app-dir", str(app_dir))
    assert result.exit_code == 1
    assert "no GPU variant" in result.output and "compose, k8s, vm" in result.output
    assert not (app_dir / "deploy").exists()


def test_existing_non_empty_out_is_left_alone(app_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    result = run_cli(
        "deploy", "render", "--target", "k8s", "--app-dir", str(app_dir), "--out", str(out)
    )
    assert result.exit_code == 1
    assert "exists and is not empty" in result.output and "--out" in result.output
    assert [p.name for p in out.iterdir()] == ["mine.txt"]

    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    result = run_cli(
        "deploy", "render", "--target", "k8s", "--app-dir", str(app_dir), "--out", str(a_file)
    )
    assert result.exit_code == 1 and "is a file, not a directory" in result.output
    assert a_file.read_text() == "x"

    empty = tmp_path / "empty"
    empty.mkdir()
    run_ok = run_cli(
        "deploy", "render", "--target", "docker", "--app-dir", str(app_dir), "--out", str(empty)
    )
    assert run_ok.exit_code == 0 and (empty / "Dockerfile").is_file()


def test_a_failing_render_leaves_nothing_behind(app_dir: Path, tmp_path: Path) -> None:
    def broken(ctx: object) -> dict[str, str]:
        # The second file cannot be written: its parent is the first file.
        return {"a.yaml": "x: 1\n", "a.yaml/b.yaml": "y: 2\n"}

    deploy_targets.register(DeployTarget("broken-test", "fails half-way", broken), replace=True)
    out = tmp_path / "out"
    try:
        with pytest.raises(OSError):
            render(load_settings(app_dir), "broken-test", out)
    finally:
        # Registries are process-wide: later tests (langdeploy new) render every target.
        deploy_targets.unregister("broken-test")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [app_dir]  # no staging directory left over


def test_secrets_never_reach_the_manifests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-test-never-render-me"
    app = make_app(
        tmp_path / "openai-app",
        """
        [model]
        backend = "openai"
        base_url = "https://api.example.com/v1"
        [deploy]
        hostname = "h.example.com"
        """,
    )
    monkeypatch.setenv("LANGDEPLOY_MODEL__API_KEY", secret)
    settings = load_settings(app)
    assert settings.model.api_key is not None
    for target in ("docker", "compose", "k8s", "vm"):
        out, _ = render(settings, target, tmp_path / "out" / target)
        for path, text in read_all(out):
            assert secret not in text, path
            assert "LANGDEPLOY_MODEL__API_KEY=" not in text, path
    # The app reads its key from a file that a Secret provides.
    settings_env = (tmp_path / "out" / "k8s" / "base" / "settings.env").read_text()
    assert "LANGDEPLOY_MODEL__API_KEY_FILE=/run/secrets/langdeploy/model-api-key" in settings_env


def test_a_secret_in_langdeploy_toml_is_refused(tmp_path: Path) -> None:
    app = make_app(tmp_path / "leaky", '[model]\napi_key = "sk-in-the-file"\n')
    result = run_cli("deploy", "render", "--target", "docker", "--app-dir", str(app))
    assert result.exit_code == 1
    assert "model.api_key" in result.output and "api_key_file" in result.output
    assert not (app / "deploy").exists()
    with pytest.raises(ConfigError):
        render(load_settings(app), "k8s", tmp_path / "k8s")


def test_validate_rejects_a_directory_with_nothing_to_check(tmp_path: Path) -> None:
    result = run_cli("deploy", "validate", str(tmp_path))
    assert result.exit_code == 1 and "Nothing to validate" in result.output
    missing = run_cli("deploy", "validate", str(tmp_path / "absent"))
    assert missing.exit_code == 1 and "is not a directory" in missing.output


def test_a_missing_validator_fails_and_names_the_install(
    app_dir: Path, render_cli: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = render_cli(app_dir, "compose")
    # Every check finds its validator through checks.tools: hide them all there.
    monkeypatch.setattr(check_tools, "find_tool", lambda name: None)
    results = validate_dir(out)
    assert results and all(r.status == "fail" for r in results)
    assert any("pip install 'langdeploy[deploy]'" in r.detail for r in results)


# --- fetch-model: the init container's step ---------------------------------------------------


class _Files(http.server.SimpleHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: object) -> None:
        _Files.hits.append(self.path)


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[tuple[str, bytes]]:
    root = tmp_path / "served"
    root.mkdir()
    payload = os.urandom(3 * 1024 * 1024 + 17)
    (root / "tiny.gguf").write_bytes(payload)
    handler = lambda *a, **kw: _Files(*a, directory=str(root), **kw)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Files.hits = []
    try:
        yield f"http://127.0.0.1:{server.server_port}/tiny.gguf", payload
    finally:
        server.shutdown()
        server.server_close()


def test_fetch_model_downloads_once_and_checks_the_hash(
    tmp_path: Path, file_server: tuple[str, bytes]
) -> None:
    url, payload = file_server
    digest = hashlib.sha256(payload).hexdigest()
    dest = tmp_path / "models" / "tiny.gguf"

    first = run_cli("deploy", "fetch-model", url, str(dest), "--sha256", digest)
    assert first.exit_code == 0, first.output
    assert dest.read_bytes() == payload
    assert len(_Files.hits) == 1

    again = run_cli("deploy", "fetch-model", url, str(dest), "--sha256", digest)
    assert again.exit_code == 0 and "already there" in again.output
    assert len(_Files.hits) == 1  # the second start downloads nothing

    wrong = tmp_path / "other" / "tiny.gguf"
    bad = run_cli("deploy", "fetch-model", url, str(wrong), "--sha256", "0" * 64)
    assert bad.exit_code == 1 and "SHA-256" in bad.output
    assert list(wrong.parent.iterdir()) == []  # no partial file is left to be trusted later

    gone = run_cli("deploy", "fetch-model", url.replace("tiny", "absent"), str(tmp_path / "x"))
    assert gone.exit_code == 1 and "Could not fetch" in gone.output


def test_fetch_model_refuses_other_schemes(tmp_path: Path) -> None:
    from langdeploy.deploy.fetch import fetch_model

    with pytest.raises(LangdeployError, match="only http"):
        fetch_model("file:///etc/passwd", tmp_path / "m.gguf")


VARIANTS = {
    "openai-upstream": """
        [server]
        chains = ["chat", "rag"]
        [model]
        backend = "openai"
        name = "gpt-small"
        base_url = "https://llm.internal.example.com:8443/v1"
        [deploy]
        hostname = "o.example.com"
        namespace = "team-a"
        """,
    "model-file": f"""
        [model]
        name = "/srv/models/tiny.gguf"
        [deploy]
        hostname = "f.example.com"
        model_url = "https://models.example.com/tiny.gguf"
        model_sha256 = "{"b" * 64}"
        models_access_mode = "ReadWriteOnce"
        storage_class = "fast"
        """,
}


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_target_validates_for_each_variant(tmp_path: Path, variant: str) -> None:
    app = make_app(tmp_path / variant, VARIANTS[variant])
    settings = load_settings(app)
    for target in ("docker", "compose", "k8s", "vm"):
        for gpu in (False, True):
            if target == "docker" and gpu:
                continue
            out, _ = render(settings, target, tmp_path / "out" / f"{target}-{gpu}", gpu=gpu)
            failed = [r for r in validate_dir(out) if r.status == "fail"]
            assert failed == [], (target, gpu, failed)


def test_app_package_is_installed_into_the_image(app_dir: Path, tmp_path: Path) -> None:
    (app_dir / "pyproject.toml").write_text('[project]\nname = "demo"\nversion = "0.1"\n')
    out, _ = render(load_settings(app_dir), "docker", tmp_path / "docker")
    text = (out / "Dockerfile").read_text()
    builder = text.split("AS runtime")[0]
    assert "COPY . /src" in builder and "RUN pip install /src" in builder
    assert [r.status for r in validate_dir(out)] == ["pass"]


def test_validate_the_whole_deploy_folder(app_dir: Path) -> None:
    for target in ("docker", "compose", "k8s", "vm"):
        result = run_cli("deploy", "render", "--target", target, "--app-dir", str(app_dir))
        assert result.exit_code == 0, result.output
    results = validate_dir(app_dir / "deploy")
    subjects = {r.subject.split(":")[0] for r in results}
    assert {"docker/Dockerfile", "compose/compose.yaml", "k8s", "vm/user-data"} <= subjects
    assert [r for r in results if r.status == "fail"] == []
    result = run_cli("deploy", "validate", str(app_dir / "deploy"), "--app-dir", str(app_dir))
    assert result.exit_code == 0 and "checks passed" in result.output
