"""The files of an app: a template's layers rendered with its variables, as text in memory.

Shared by `langdeploy new` (render.py writes them) and `langdeploy upgrade` (upgrade.py merges
them into an existing app), so neither of those imports the other for it.

Layers are directories of a package, walked with importlib.resources so templates work from a
wheel as well as a checkout. A file that ends in ``.j2`` is rendered with Jinja2 (the suffix is
dropped); any other file is copied. A name that starts with ``_dot_`` becomes a dotfile
(``_dot_gitignore`` -> ``.gitignore``), because package data globs skip dotfiles.
"""

from __future__ import annotations

import json
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import PurePosixPath
from typing import Any

from jinja2 import Environment, StrictUndefined, TemplateError

from langdeploy import __version__
from langdeploy.errors import LangdeployError
from langdeploy.templates.registry import AppTemplate

DOT_PREFIX = "_dot_"


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
