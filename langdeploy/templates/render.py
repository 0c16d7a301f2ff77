"""Render an app from a template: validate the name, render into a temporary directory, move.

Layers are directories of a package, walked with importlib.resources so templates work from a
wheel as well as a checkout. A file that ends in ``.j2`` is rendered with Jinja2 (the suffix is
dropped); any other file is copied. A name that starts with ``_dot_`` becomes a dotfile
(``_dot_gitignore`` -> ``.gitignore``), because package data globs skip dotfiles. The app's
deploy/ folder comes from the deploy renderer, from the app's own settings.
"""

from __future__ import annotations

import json
import keyword
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath
from typing import Any

from jinja2 import Environment, StrictUndefined, TemplateError

from langdeploy import __version__
from langdeploy.errors import ConfigError, LangdeployError, UnknownNameError, sentence
from langdeploy.models.catalog import BUILTIN_MODELS
from langdeploy.templates.registry import AppTemplate, template_registry
from langdeploy.templates.upgrade import write_state

# Top-level names the app itself uses, or that would shadow langdeploy and its tools.
_RESERVED = {"langdeploy", "chains", "guards", "deploy", "tests", "test", "docs", "app"}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# deploy.name becomes Kubernetes object names: at most 42 characters there.
MAX_NAME = 40
DOT_PREFIX = "_dot_"


@dataclass
class NewApp:
    """What `new_app` wrote."""

    path: Path
    template: str
    files: list[str]
    # Deploy targets rendered, and those skipped with the reason and the fix.
    deploy_targets: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def validate_app_name(name: str) -> str:
    """The name, if it is a valid lowercase Python package name; else a ConfigError with a fix."""
    if not name or "/" in name or "\\" in name or name.startswith(".") or ".." in name:
        raise ConfigError(
            f"The app name {name!r} looks like a path; NAME is the app's name only.",
            fix="Pass a plain name such as my_app, and choose where it goes with --dir PATH.",
        )
    suggestion = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_")
    if suggestion and not suggestion[0].isalpha():
        suggestion = f"app_{suggestion}"
    if not _NAME.fullmatch(name) or name.endswith("_"):
        raise ConfigError(
            f"The app name {name!r} is not a valid Python package name: use lowercase letters, "
            "digits and underscores, starting with a letter and not ending with an underscore.",
            fix=f"Try {suggestion or 'my_app'!r}.",
        )
    if len(name) > MAX_NAME:
        raise ConfigError(
            f"The app name {name!r} is {len(name)} characters long; at most {MAX_NAME} fit the "
            "names of its Kubernetes objects.",
            fix="Choose a shorter name.",
        )
    if keyword.iskeyword(name) or name in sys.stdlib_module_names or name in _RESERVED:
        raise ConfigError(
            f"The app name {name!r} would shadow a Python keyword, a standard-library module or "
            "a folder of the app.",
            fix=f"Choose another name, for example {name + '_app'!r}.",
        )
    return name


def _model_name(model: str | None) -> str:
    """A catalog name as given, or a .gguf path made absolute (the app may run elsewhere)."""
    if model is None:
        return "smollm2-135m"
    if model in BUILTIN_MODELS:
        return model
    path = Path(model).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ConfigError(
                f"--model {model!r}: the file {path.resolve()} does not exist.",
                fix="Pass the path of an existing .gguf file, or a catalog name.",
            )
        return str(path.resolve())
    raise ConfigError(
        f"--model {model!r} is neither a catalog model nor a .gguf file.",
        fix=f"Use one of {', '.join(sorted(BUILTIN_MODELS))} (langdeploy models list), or a "
        "path to a .gguf file.",
    )


def template_vars(template: AppTemplate, name: str, model: str) -> dict[str, Any]:
    extras = ",".join(template.extras)
    return {
        "name": name,
        "title": name.replace("_", " ").title(),
        "deploy_name": name.replace("_", "-"),
        "template": template.name,
        "description": template.description,
        "chain": template.chain,
        "model_name": model,
        "langdeploy_version": __version__,
        "langdeploy_requirement": f"langdeploy[{extras}]>={__version__}"
        if extras
        else f"langdeploy>={__version__}",
        "test_max_tokens": template.test_max_tokens,
        **template.variables,
    }


def _walk(root: Traversable, prefix: PurePosixPath) -> list[tuple[PurePosixPath, Traversable]]:
    out: list[tuple[PurePosixPath, Traversable]] = []
    for child in sorted(root.iterdir(), key=lambda c: c.name):
        if child.name == "__pycache__" or child.name.endswith(".pyc"):
            continue
        if child.is_dir():
            out += _walk(child, prefix / child.name)
        else:
            out.append((prefix / child.name, child))
    return out


def _target_name(rel: PurePosixPath) -> PurePosixPath:
    parts = [p.replace(DOT_PREFIX, ".", 1) if p.startswith(DOT_PREFIX) else p for p in rel.parts]
    if parts[-1].endswith(".j2"):
        parts[-1] = parts[-1][: -len(".j2")]
    return PurePosixPath(*parts)


def render_app_files(template: AppTemplate, variables: dict[str, Any]) -> dict[str, str]:
    """The app's files (relative path -> text), later layers overriding earlier ones."""
    env = Environment(
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # source files and TOML, not HTML
    )
    # A JSON string is a valid TOML basic string: paths with quotes or backslashes stay intact.
    env.filters["toml"] = json.dumps
    files: dict[str, str] = {}
    try:
        package_root = resources.files(template.package)
    except ModuleNotFoundError:
        raise LangdeployError(
            f"The template {template.name!r} names the package {template.package!r}, which is "
            "not installed.",
            fix="Install the package that provides the template.",
        ) from None
    for layer in template.layers:
        root = package_root.joinpath(layer)
        if not root.is_dir():
            raise LangdeployError(
                f"The template {template.name!r}: layer {layer!r} is not a directory of "
                f"{template.package}.",
                fix="Fix the template's layers.",
            )
        for rel, source in _walk(root, PurePosixPath()):
            target = _target_name(rel)
            if target.is_absolute() or ".." in target.parts:
                raise LangdeployError(
                    f"The template {template.name!r} would write outside the app: {target}.",
                    fix="Rename the file in the template.",
                )
            text = source.read_text(encoding="utf-8")
            if rel.name.endswith(".j2"):
                try:
                    text = env.from_string(text).render(**variables)
                except TemplateError as exc:
                    raise LangdeployError(
                        f"The template {template.name!r} failed to render {layer}/{rel}: {exc}",
                        fix="Fix the template file.",
                    ) from None
            files[str(target)] = text
    return files


def _check_destination(dest: Path, force: bool) -> None:
    if dest.exists() and not dest.is_dir():
        raise ConfigError(
            f"{dest} is a file, not a directory.", fix="Choose another --dir or app name."
        )
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise ConfigError(
            f"The directory {dest} exists and is not empty.",
            fix="Choose another --dir or name, or pass --force to write the app's files into it "
            "(files the template does not have are kept).",
        )


def _render_deploy(staging: Path, app: NewApp) -> None:
    """deploy/<target>/ for every target, from the app's own settings, via the deploy renderer."""
    from langdeploy.deploy import deploy_targets
    from langdeploy.deploy import render as render_target
    from langdeploy.settings import load_settings

    settings = load_settings(staging)
    for target in deploy_targets.names():
        try:
            render_target(settings, target, staging / "deploy" / target)
        except ConfigError as exc:
            # One target may need a setting first (k8s and a local model file): say how.
            app.notes.append(
                f"deploy/{target} was not rendered: {sentence(str(exc))} "
                f"Then run: langdeploy deploy render --target {target}"
            )
            continue
        app.deploy_targets.append(target)


def new_app(
    name: str,
    template_name: str,
    *,
    directory: Path | None = None,
    model: str | None = None,
    force: bool = False,
) -> NewApp:
    """Write a new app into ``directory`` (default ./NAME); all files or none."""
    validate_app_name(name)
    try:
        template = template_registry.get(template_name)
    except UnknownNameError as exc:
        raise UnknownNameError(
            "template", template_name, exc.known, fix="See `langdeploy templates list`."
        ) from None
    dest = (directory if directory is not None else Path.cwd() / name).expanduser().resolve()
    _check_destination(dest, force)
    model_name = _model_name(model)
    files = render_app_files(template, template_vars(template, name, model_name))
    app = NewApp(path=dest, template=template.name, files=sorted(files))
    answers = {
        "template": template.name,
        "name": name,
        "model": model_name,
        "langdeploy_version": __version__,
    }

    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        for rel, text in files.items():
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        _render_deploy(staging, app)
        app.files = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
        # What `langdeploy upgrade` merges against later.
        write_state(staging, answers, files)
        staging.chmod(0o755)
        if dest.is_dir() and any(dest.iterdir()):
            _merge_into(staging, dest)
        else:
            if dest.is_dir():
                dest.rmdir()
            os.replace(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return app


def _merge_into(staging: Path, dest: Path) -> None:
    """--force: every file of the new app replaces its namesake; other files stay."""
    for source in sorted(staging.rglob("*")):
        target = dest / source.relative_to(staging)
        if source.is_dir():
            if target.exists() and not target.is_dir():
                target.unlink()
            target.mkdir(parents=True, exist_ok=True)
        else:
            if target.is_dir():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
