"""Deploy targets and the renderer that writes their files.

A target is a name, a description and a function that maps a DeployContext to the files it
writes (relative path -> text). Built-in targets register through the same hook as a plugin's
(``register_deploy_targets`` in langdeploy/deploy/builtin.py). Rendering goes to a temporary
directory beside the destination, then moves into place, so a failure never leaves half the files.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from langdeploy.deploy.context import DeployContext, build_context
from langdeploy.errors import LangdeployError
from langdeploy.fsutil import atomic_dir, write_tree
from langdeploy.plugins import Registry
from langdeploy.settings import Settings

RenderFn = Callable[[DeployContext], dict[str, str]]


@dataclass(frozen=True)
class DeployTarget:
    """One kind of deployment: ``render`` returns relative path -> file text."""

    name: str
    description: str
    render: RenderFn
    gpu_variant: bool = True
    # What to run next, shown after rendering; {out} is the output directory.
    usage: str = ""


deploy_targets: Registry[DeployTarget] = Registry("deploy target", "register_deploy_targets")


def _yaml_value(value: Any) -> str:
    # JSON scalars are valid YAML and quote every awkward string ("on", "8000", "a: b") safely.
    return json.dumps(value)


_env: Environment | None = None


def template_env() -> Environment:
    global _env
    if _env is None:
        env = Environment(
            loader=PackageLoader("langdeploy.deploy", "templates"),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            autoescape=False,
        )
        env.filters["q"] = _yaml_value
        _env = env
    return _env


def render_template(name: str, ctx: DeployContext, **extra: Any) -> str:
    return template_env().get_template(name).render(**ctx.as_template_vars(), **extra)


def render_files(
    settings: Settings, target: str, *, gpu: bool = False, needs: frozenset[str] = frozenset()
) -> dict[str, str]:
    """The files of ``target`` for these settings, in memory."""
    spec = deploy_targets.get(target)
    _check_gpu(spec, gpu)
    ctx = build_context(settings, gpu=gpu, needs=needs)
    return spec.render(ctx)


def _check_gpu(spec: DeployTarget, gpu: bool) -> None:
    if gpu and not spec.gpu_variant:
        with_gpu = [name for name, t in deploy_targets.items() if t.gpu_variant]
        raise LangdeployError(
            f"The {spec.name} target has no GPU variant: the GPU variants run vLLM beside the app.",
            fix=f"Drop --gpu, or use --gpu with one of: {', '.join(with_gpu)}.",
        )


def default_out_dir(settings: Settings, target: str) -> Path:
    """deploy/<target> inside the app (or the current directory outside one)."""
    base = settings.app.dir if settings.app.dir is not None else Path.cwd()
    return base / "deploy" / target


def render(
    settings: Settings,
    target: str,
    out: Path | None = None,
    *,
    gpu: bool = False,
    needs: frozenset[str] = frozenset(),
) -> tuple[Path, list[str]]:
    """Render ``target`` into ``out`` (which must not exist or be empty). Returns (dir, files).
    ``needs``: what the served chains need beside the app (``AppRuntime.needs()``)."""
    spec = deploy_targets.get(target)
    _check_gpu(spec, gpu)
    out = (out or default_out_dir(settings, target)).resolve()
    if out.exists() and not out.is_dir():
        raise LangdeployError(
            f"--out {out} is a file, not a directory.",
            fix="Pass a directory path that does not exist yet.",
        )
    if out.is_dir() and any(out.iterdir()):
        raise LangdeployError(
            f"The output directory {out} exists and is not empty; langdeploy does not overwrite "
            "files.",
            fix="Remove it, or pass another --out directory.",
        )
    ctx = build_context(settings, gpu=gpu, needs=needs)
    ctx.extra["out_dir"] = out
    files = spec.render(ctx)
    with atomic_dir(out) as staging:  # empty or missing, checked above
        write_tree(staging, files)
    return out, sorted(files)
