"""Helpers shared by the CLI modules: settings at the edge, errors as one clear line."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from langdeploy.errors import LangdeployError
from langdeploy.settings import Settings, load_settings

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(func: F) -> F:
    """Print a LangdeployError as a message with its fix and exit 1, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LangdeployError as exc:
            # Escaped: messages quote things like [app] modules and langdeploy[rag] literally.
            err_console.print(
                f"[bold red]Error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def settings_from(app_dir: Path | None = None, **model_overrides: Any) -> Settings:
    """Load settings once; CLI flags that were given override the files and environment."""
    settings = load_settings(app_dir)
    for key, value in model_overrides.items():
        if value is not None:
            section, _, field = key.partition("__")
            setattr(getattr(settings, section), field, value)
    return settings
