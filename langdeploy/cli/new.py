"""`langdeploy new` and `langdeploy templates list`: scaffold an app from a template."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape

from langdeploy.cli.common import console, err_console, handle_errors, names_table

templates_app = typer.Typer(help="App templates for `langdeploy new`.", no_args_is_help=True)


@handle_errors
def new(
    name: str = typer.Argument(..., help="The app's name: a Python package name, e.g. my_app."),
    template: str = typer.Option(
        "chat",
        "--template",
        "-t",
        help="chat, rag, summarize or extract (langdeploy templates list).",
    ),
    model: str | None = typer.Option(
        None, "--model", "-m", help="Catalog name or path to a .gguf file (default: smollm2-135m)."
    ),
    directory: Path | None = typer.Option(
        None, "--dir", "-d", help="The app's directory (default: ./NAME)."
    ),
    force: bool = typer.Option(
        False, "--force", help="Write into an existing non-empty directory, replacing its files."
    ),
) -> None:
    """Create a new app that serves, tests and deploys out of the box."""
    from langdeploy.templates import new_app

    app = new_app(name, template, directory=directory, model=model, force=force)
    console.print(
        f"Created {app.path} from the {app.template} template ({len(app.files)} files; "
        f"deploy/: {', '.join(app.deploy_targets) or 'none'}).",
        highlight=False,
    )
    for note in app.notes:
        err_console.print(f"[yellow]Note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    shown = _shown(app.path)
    console.print("Next:", highlight=False)
    console.print(f"  cd {shown} && pip install -e '.[dev]'", highlight=False, markup=False)
    console.print("  langdeploy serve        # then see README.md", highlight=False)
    console.print("  python -m pytest", highlight=False)


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@templates_app.command("list")
@handle_errors
def list_templates(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the templates (built-in and from plugins): name, description, what it includes."""
    from langdeploy.templates import template_registry

    items = list(template_registry.items())
    if as_json:
        out = [
            {
                "name": name,
                "description": t.description,
                "chain": t.chain,
                "includes": list(t.includes),
            }
            for name, t in items
        ]
        console.print_json(json.dumps(out))
        return
    table = names_table(
        "langdeploy templates",
        "template",
        [name for name, _ in items],
        ["description", "includes"],
        show_lines=True,
    )
    for name, t in items:
        table.add_row(name, t.description, "\n".join(t.includes))
    console.print(table)
    console.print("Create an app with: langdeploy new NAME --template TEMPLATE", highlight=False)


@handle_errors
def upgrade(
    app_dir: Path | None = typer.Option(
        None, "--app-dir", help="The app's directory (default: found from the current one)."
    ),
    template: str | None = typer.Option(
        None, "--template", "-t", help="Switch to another template (default: the app's own)."
    ),
) -> None:
    """Re-apply the app's template, as this langdeploy has it, keeping your edits."""
    from langdeploy.errors import ConfigError
    from langdeploy.settings import find_app_dir
    from langdeploy.templates.upgrade import upgrade_app

    where = app_dir or find_app_dir()
    if where is None:
        raise ConfigError(
            "No langdeploy.toml here or above, so there is no app to upgrade.",
            fix="Run it inside the app, or pass --app-dir.",
        )
    report = upgrade_app(where, template_name=template)
    if not report.changed:
        console.print(
            f"{where} is up to date with its template (langdeploy {report.to_version}).",
            highlight=False,
            soft_wrap=True,
        )
    for label, paths in (
        ("updated", report.updated),
        ("added", report.added),
        ("merged with your edits", report.merged),
        ("removed (the template dropped it, you never edited it)", report.removed),
        ("kept as you have it", report.kept),
    ):
        for rel in paths:
            console.print(f"  {label}: {rel}", highlight=False, markup=False, soft_wrap=True)
    for rel in report.conflicts:
        err_console.print(
            f"  conflict: {rel} (both you and the template changed the same lines; "
            "resolve the <<<<<<< markers)",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    if report.conflicts:
        raise typer.Exit(1)


def install(app: typer.Typer) -> None:
    """Add `new`, `upgrade` and `templates` to the main app."""
    app.command("new")(new)
    app.command("upgrade")(upgrade)
    app.add_typer(templates_app, name="templates")
