"""Render an app from a template: validate the name, render into a temporary directory, move.

The template's files come from layers.py (render_app_files); the app's deploy/ folder comes
from the deploy renderer, from the app's own settings.
"""

from __future__ import annotations

import keyword
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from langdeploy import __version__
from langdeploy.errors import ConfigError, UnknownNameError, sentence
from langdeploy.fsutil import atomic_dir, write_tree
from langdeploy.models.catalog import BUILTIN_MODELS
from langdeploy.templates.layers import render_app_files, template_vars
from langdeploy.templates.registry import template_registry
from langdeploy.templates.upgrade import write_state

# render_app_files and template_vars lived here; callers still import them from this module.
__all__ = [
    "MAX_NAME",
    "NewApp",
    "new_app",
    "render_app_files",
    "template_vars",
    "validate_app_name",
]

# Top-level names the app itself uses, or that would shadow langdeploy and its tools.
_RESERVED = {"langdeploy", "chains", "guards", "deploy", "tests", "test", "docs", "app"}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# deploy.name becomes Kubernetes object names: at most 42 characters there.
MAX_NAME = 40


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

    # --force into a folder with files: the app's files replace their namesakes, others stay.
    with atomic_dir(dest, merge=True) as staging:
        write_tree(staging, files)
        _render_deploy(staging, app)
        app.files = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
        # What `langdeploy upgrade` merges against later.
        write_state(staging, answers, files)
    return app
