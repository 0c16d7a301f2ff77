"""`langdeploy new` and `langdeploy templates list`: scaffold an app from a template."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from langdeploy.cli.common import console, err_console, handle_errors

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
    table = Table(title="langdeploy templates", show_lines=True)
    table.add_column("template", style="bold")
    table.add_column("description")
    table.add_column("includes")
    for name, t in items:
        table.add_row(name, t.description, "\n".join(t.includes))
    console.print(table)
    console.print("Create an app with: langdeploy new NAME --template TEMPLATE", highlight=False)


def install(app: typer.Typer) -> None:
    """Add `new` and `templates` to the main app."""
    app.command("new")(new)
    app.add_typer(templates_app, name="templates")
