"""Helpers shared by the CLI modules: settings at the edge, errors as one clear line."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from langdeploy.errors import LangdeployError
from langdeploy.settings import Settings, apply_overrides, load_settings

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(func: F) -> F:
    """Print a LangdeployError as a message with its fix and exit (1, or 2 for a bad option
    value), never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except LangdeployError as exc:
            # Escaped: messages quote things like [app] modules and langdeploy[rag] literally.
            err_console.print(
                f"[bold red]Error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


def settings_from(
    app_dir: Path | None = None, *, flags: dict[str, str] | None = None, **overrides: Any
) -> Settings:
    """Load settings once; CLI flags that were given override the files and environment.

    ``overrides`` are ``section__field=value``; ``flags`` names the option behind each where it
    is not ``--field``, so a bad value is reported as that option's (exit 2), in the same form
    as a bad setting.
    """
    settings = load_settings(app_dir)
    # By default an option is named after its field (--collection for retrieval__collection).
    named = {key: "--" + key.partition("__")[2].replace("_", "-") for key in overrides}
    apply_overrides(settings, overrides, {**named, **(flags or {})})
    return settings


def names_table(title: str, key: str, names: list[str], columns: list[str], **kw: Any) -> Table:
    """A table whose first column holds names a user types (never cut, at any terminal width);
    the other columns fold their text onto more lines instead of cutting it with an ellipsis."""
    table = Table(title=title, **kw)
    table.add_column(key, no_wrap=True, min_width=max((len(n) for n in names), default=4))
    for column in columns:
        table.add_column(column, overflow="fold")
    return table
