"""`langdeploy guards list|scan`: the registered guards, and guards over JSON lines."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from langdeploy.cli.common import console, err_console, handle_errors, names_table, settings_from
from langdeploy.guards.base import STAGES, GuardContext
from langdeploy.guards.registry import guard_registry
from langdeploy.runtime import load_app

app = typer.Typer(help="Guardrails: list the guards, scan text with them.", no_args_is_help=True)


APP_DIR = typer.Option(
    None, "--app-dir", help="App directory with langdeploy.toml (default: found from cwd)."
)


@app.command("list")
@handle_errors
def list_guards(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    app_dir: Path | None = APP_DIR,
) -> None:
    """List the registered guards: built-in, plugins' and the app's own."""
    load_app(settings_from(app_dir))
    rows: list[dict[str, Any]] = [
        {
            "name": name,
            "stages": list(cls.stages),
            "default_action": cls.default_action,
            "actions": list(cls.allowed_actions),
            "options": sorted(f.alias or n for n, f in cls.Options.model_fields.items()),
            "description": cls.description,
        }
        for name, cls in guard_registry.items()
    ]
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = names_table(
        "langdeploy guards",
        "name",
        [r["name"] for r in rows],
        ["stages", "default", "actions", "options", "description"],
    )
    for r in rows:
        table.add_row(
            r["name"],
            ", ".join(r["stages"]),
            r["default_action"],
            ", ".join(r["actions"]),
            ", ".join(r["options"]) or "-",
            r["description"],
        )
    console.print(table)


@app.command("scan")
@handle_errors
def scan(
    stage: str = typer.Option("input", help=f"The stage: {', '.join(STAGES)}."),
    config: Path | None = typer.Option(
        None,
        "--config",
        help="guards.yaml (default: the app's guards/guards.yaml, else the built-in defaults).",
    ),
    chain: str | None = typer.Option(
        None, help="Whose guards to use (default: the app's first served chain)."
    ),
    app_dir: Path | None = APP_DIR,
) -> None:
    """Read JSON lines {"text": "..."} from stdin; write one JSON line per input, in order:
    {"allowed": bool, "text": "<after redaction>", "violations": [{"guard", "category",
    "action"}]}. The guards are the app's: its guards.yaml, its own guards and chains."""
    if stage not in STAGES:
        raise typer.BadParameter(f"{stage!r}; use one of {', '.join(STAGES)}", param_hint="--stage")
    runtime = load_app(settings_from(app_dir, guards__config=config))
    name = chain or runtime.served[0]
    pipeline = getattr(runtime.chain_guards(name), stage)
    out = sys.stdout
    bad = 0
    for n, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        record: dict[str, Any]
        try:
            data = json.loads(line)
            text = data["text"]
            if not isinstance(text, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            bad += 1
            record = {
                "allowed": False,
                "text": "",
                "violations": [],
                "error": f'line {n}: expected a JSON object {{"text": "..."}}',
            }
        else:
            result = pipeline.run(text, GuardContext(pipeline.stage))
            record = {
                "allowed": result.allowed,
                "text": result.text,
                "violations": [
                    {"guard": v.guard, "category": v.category, "action": v.action}
                    for v in result.violations
                ],
            }
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
    out.flush()
    if bad:
        err_console.print(
            f"[bold red]Error:[/] {bad} input line(s) were not JSON objects "
            'with a "text" string; see the "error" field.'
        )
        raise typer.Exit(1)
