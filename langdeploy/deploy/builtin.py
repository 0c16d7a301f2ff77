"""The built-in deploy targets: docker, compose, k8s and vm.

They register through ``register_deploy_targets``, the same hook a plugin defines.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langdeploy.deploy.context import APP_PORT, DeployContext, gpu_env
from langdeploy.deploy.render import DeployTarget, default_out_dir, render_template
from langdeploy.errors import ConfigError

VLLM_VM_PORT = 8001
CHROMA_VM_PORT = 8002


def _out_dir(ctx: DeployContext, target: str) -> Path:
    out = ctx.extra.get("out_dir")
    return Path(out) if out is not None else default_out_dir(ctx.settings, target)


def _build_paths(ctx: DeployContext, target: str) -> dict[str, str]:
    """Docker build context (the app) and Dockerfile, relative to where the command runs."""
    out = _out_dir(ctx, target).resolve()
    app = (ctx.app_dir or Path.cwd()).resolve()
    dockerfile = out / "Dockerfile"
    return {
        # For `docker build`, run from the app directory.
        "context_rel": ".",
        "dockerfile_rel": os.path.relpath(dockerfile, app),
        # For compose: the context is relative to compose.yaml, the Dockerfile to the context.
        "compose_context_rel": os.path.relpath(app, out),
    }


def _hf_fetch_script(ctx: DeployContext) -> str:
    return render_template("hf_fetch.py.j2", ctx)


def _docker_files(ctx: DeployContext, target: str) -> dict[str, str]:
    paths = _build_paths(ctx, target)
    return {
        "Dockerfile": render_template("docker/Dockerfile.j2", ctx, **paths),
        # BuildKit reads <Dockerfile>.dockerignore beside the Dockerfile, so the ignore rules
        # apply although the build context is the app directory.
        "Dockerfile.dockerignore": render_template("docker/dockerignore.j2", ctx),
    }


def render_docker(ctx: DeployContext) -> dict[str, str]:
    return _docker_files(ctx, "docker")


def _bytes(quantity: str) -> int:
    """A Kubernetes quantity (8Gi, 512Mi, 2G) in bytes, for compose's shm_size."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]i?)?", quantity.strip())
    if match is None:
        raise ConfigError(
            f"deploy.gpu.shm_size {quantity!r} is not a size.",
            fix="Write it like 8Gi or 512Mi.",
        )
    number, unit = float(match.group(1)), match.group(2) or ""
    powers = {"K": 1, "M": 2, "G": 3, "T": 4}
    base = 1024 if unit.endswith("i") else 1000
    return int(number * base ** powers[unit[0]]) if unit else int(number)


def render_compose(ctx: DeployContext) -> dict[str, str]:
    paths = _build_paths(ctx, "compose")
    host_models_dir = "./models"
    if ctx.model.kind == "file":
        host_models_dir = str(Path(ctx.settings.model.name).expanduser().resolve().parent)
    files = _docker_files(ctx, "compose")
    # Compose services reach each other by service name.
    env = dict(ctx.env)
    if ctx.rag:
        env["LANGDEPLOY_RETRIEVAL__HOST"] = "chroma"
    gpu_vars = {**env, **gpu_env(ctx), "LANGDEPLOY_MODEL__BASE_URL": f"http://vllm:{APP_PORT}/v1"}
    files["compose.yaml"] = render_template(
        "compose/compose.yaml.j2",
        ctx,
        context_rel=paths["compose_context_rel"],
        dockerfile_rel=paths["dockerfile_rel"],
        app_env_vars=env,
        gpu_env_vars=gpu_vars,
        hf_fetch_script=_hf_fetch_script(ctx),
        shm_size_bytes=_bytes(ctx.settings.deploy.gpu.shm_size),
        host_models_dir=host_models_dir,
    )
    files[".env"] = render_template("compose/env.j2", ctx)
    return files


def _cpu_threads(ctx: DeployContext) -> int | None:
    if ctx.settings.model.n_threads is not None:
        return None
    limit = ctx.settings.deploy.cpu_limit.strip()
    try:
        cores = float(limit[:-1]) / 1000 if limit.endswith("m") else float(limit)
    except ValueError:
        raise ConfigError(
            f"deploy.cpu_limit {limit!r} is not a CPU quantity.",
            fix="Write it like 2 or 1500m.",
        ) from None
    return max(1, math.floor(cores))


K8S_TEMPLATES = (
    "kustomization.yaml",
    "base/kustomization.yaml",
    "base/settings.env",
    "base/serviceaccount.yaml",
    "base/deployment.yaml",
    "base/service.yaml",
    "base/hpa.yaml",
    "base/pdb.yaml",
    "base/networkpolicy.yaml",
    "overlays/cpu/kustomization.yaml",
    "overlays/gpu/kustomization.yaml",
    "overlays/gpu/vllm-pvc.yaml",
    "overlays/gpu/vllm-deployment.yaml",
    "overlays/gpu/vllm-service.yaml",
    "overlays/gpu/vllm-networkpolicy.yaml",
    "overlays/chroma/kustomization.yaml",
    "overlays/chroma/statefulset.yaml",
    "overlays/chroma/service.yaml",
    "overlays/chroma/networkpolicy.yaml",
    "overlays/ingress/kustomization.yaml",
    "overlays/ingress/ingress.yaml",
)


def render_k8s(ctx: DeployContext) -> dict[str, str]:
    d = ctx.settings.deploy
    if ctx.model.kind == "file" and not ctx.model.url and d.models_access_mode != "ReadOnlyMany":
        raise ConfigError(
            f"model.name {ctx.settings.model.name!r} is a local file, and nothing would put it on "
            "the cluster's models volume.",
            fix="Set deploy.model_url (LANGDEPLOY_DEPLOY__MODEL_URL=https://...) so an init "
            "container fetches it once, or set deploy.models_access_mode=ReadOnlyMany for a volume "
            "you fill yourself.",
        )
    extra: dict[str, Any] = {
        "cpu_threads": _cpu_threads(ctx),
        "gpu_env_vars": gpu_env(ctx),
        "hf_fetch_script": _hf_fetch_script(ctx),
    }
    names = [*K8S_TEMPLATES]
    if ctx.model.kind == "file":
        names.append("base/pvc-models.yaml")
    return {name: render_template(f"k8s/{name}.j2", ctx, **extra) for name in names}


def vm_paths(name: str) -> dict[str, str]:
    return {
        "vm_app_dir": f"/opt/{name}/app",
        "vm_venv": f"/opt/{name}/venv",
        "vm_vllm_venv": f"/opt/{name}/vllm-venv",
        "vm_env_file": f"/etc/{name}/{name}.env",
        "vm_hf_fetch": f"/opt/{name}/fetch-vllm-model.py",
        "vm_chroma_venv": f"/opt/{name}/chroma-venv",
        "vllm_port": str(VLLM_VM_PORT),
        "chroma_port": str(CHROMA_VM_PORT),
    }


def _systemd_quote(value: str) -> str:
    """A value for a systemd EnvironmentFile, which strips shell-style quotes: keep JSON intact."""
    if re.fullmatch(r"[A-Za-z0-9_./:,@%+=-]*", value):
        return value
    if "'" not in value:
        return f"'{value}'"
    escaped = re.sub(r'(["\\$`])', r"\\\1", value)
    return f'"{escaped}"'


def _chroma_package(image: str) -> str:
    """The chromadb release that matches the Chroma server image of the other targets."""
    tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else ""
    return f"chromadb=={tag}" if re.fullmatch(r"\d+(\.\d+)*", tag) else "chromadb"


def render_vm(ctx: DeployContext) -> dict[str, str]:
    d = ctx.settings.deploy
    if not d.hostname:
        raise ConfigError(
            "deploy.hostname is not set, so the VM's reverse proxy has no name to get a TLS "
            "certificate for.",
            fix="Set it to the DNS name that points at the VM (LANGDEPLOY_DEPLOY__HOSTNAME="
            "llm.example.com, or hostname under [deploy] in langdeploy.toml).",
        )
    name = d.name
    paths = vm_paths(name)
    env = dict(ctx.env)
    model_path = ctx.settings.model.name
    if ctx.model.kind == "file":
        if ctx.model.url:
            model_path = f"/var/lib/{name}/models/{ctx.model.file_name}"
        elif not model_path.startswith("/") or model_path.startswith(("/home/", "/root/", "/run/")):
            raise ConfigError(
                f"model.name {model_path!r} is not a path the VM's service can read: it must be "
                "absolute and outside /home, /root and /run (ProtectHome hides those).",
                fix="Set deploy.model_url so the VM fetches the file once, or give a path such "
                "as /srv/models/model.gguf.",
            )
        env["LANGDEPLOY_MODEL__NAME"] = model_path
    if ctx.gpu:
        env.update(gpu_env(ctx))
        env["LANGDEPLOY_MODEL__BASE_URL"] = f"http://127.0.0.1:{VLLM_VM_PORT}/v1"
    if ctx.rag:
        env["LANGDEPLOY_RETRIEVAL__MODE"] = "server"
        env["LANGDEPLOY_RETRIEVAL__HOST"] = "127.0.0.1"
        env["LANGDEPLOY_RETRIEVAL__PORT"] = str(CHROMA_VM_PORT)
    env["LANGDEPLOY_SERVER__HOST"] = "127.0.0.1"
    # An upstream API key comes in as a systemd credential (see the unit), not a container path.
    api_key_file = None
    if env.pop("LANGDEPLOY_MODEL__API_KEY_FILE", None) is not None:
        api_key_file = f"/etc/{name}/model-api-key"
    # Services the app needs, started before it.
    unit_deps = [f"{name}-vllm.service"] * ctx.gpu + [f"{name}-chroma.service"] * ctx.rag
    extra: dict[str, Any] = {
        **paths,
        "vm_model_path": model_path,
        "vm_api_key_file": api_key_file,
        "unit_deps": unit_deps,
        "chroma_package": _chroma_package(d.chroma_image),
    }
    unit = render_template("vm/langdeploy.service.j2", ctx, **extra)
    caddyfile = render_template("vm/Caddyfile.j2", ctx, **extra)
    env_text = "".join(f"{key}={_systemd_quote(value)}\n" for key, value in sorted(env.items()))
    files: dict[str, str] = {
        f"{name}.service": unit,
        "Caddyfile": caddyfile,
        f"{name}.env": env_text,
    }
    vm_files: list[dict[str, str]] = [
        {"path": f"/etc/systemd/system/{name}.service", "owner": "root:root", "mode": "0644",
         "content": unit},
        {"path": paths["vm_env_file"], "owner": f"root:{name}", "mode": "0640",
         "content": env_text},
        {"path": "/etc/caddy/Caddyfile", "owner": "root:root", "mode": "0644",
         "content": caddyfile},
    ]  # fmt: skip
    # The settings travel in the environment file (secrets left out), not as langdeploy.toml;
    # an empty one gives the service its app directory.
    vm_files.append(
        {"path": f"{paths['vm_app_dir']}/langdeploy.toml", "owner": "root:root", "mode": "0644",
         "content": "# Settings come from the environment file " + paths["vm_env_file"] + ".\n"}
    )  # fmt: skip
    if ctx.gpu:
        vllm_unit = render_template("vm/vllm.service.j2", ctx, **extra)
        fetch = _hf_fetch_script(ctx)
        files[f"{name}-vllm.service"] = vllm_unit
        vm_files.append(
            {"path": f"/etc/systemd/system/{name}-vllm.service", "owner": "root:root",
             "mode": "0644", "content": vllm_unit}
        )  # fmt: skip
        vm_files.append(
            {"path": paths["vm_hf_fetch"], "owner": "root:root", "mode": "0644", "content": fetch}
        )
    if ctx.rag:
        chroma_unit = render_template("vm/chroma.service.j2", ctx, **extra)
        files[f"{name}-chroma.service"] = chroma_unit
        vm_files.append(
            {"path": f"/etc/systemd/system/{name}-chroma.service", "owner": "root:root",
             "mode": "0644", "content": chroma_unit}
        )  # fmt: skip
    files["user-data"] = render_template(
        "vm/user-data.j2",
        ctx,
        vm_files=vm_files,
        enable_units=[*unit_deps, f"{name}.service"],
        **extra,
    )
    return files


BUILTIN_TARGETS = (
    DeployTarget(
        "docker",
        "Multi-stage Dockerfile (non-root, model baked in) and its ignore file.",
        render_docker,
        gpu_variant=False,
        usage="From the app directory: docker build -f {out}/Dockerfile -t IMAGE .",
    ),
    DeployTarget(
        "compose",
        "compose.yaml: the app, Chroma for rag, a gpu profile with vLLM.",
        render_compose,
        usage="docker compose -f {out}/compose.yaml up --build "
        "(COMPOSE_PROFILES=gpu for the vLLM variant)",
    ),
    DeployTarget(
        "k8s",
        "Kustomize base and overlays (cpu, gpu, chroma, ingress) for a cluster.",
        render_k8s,
        usage="kubectl apply -k {out} (or -k {out}/overlays/cpu, {out}/overlays/gpu)",
    ),
    DeployTarget(
        "vm",
        "cloud-init user-data: virtualenv, hardened systemd unit, Caddy with TLS.",
        render_vm,
        usage="Give {out}/user-data to the VM as its user data (cloud-init).",
    ),
)


def register_deploy_targets(register: Callable[..., None]) -> None:
    for target in BUILTIN_TARGETS:
        register(target)
