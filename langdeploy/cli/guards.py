"""`langdeploy guards list|scan`: the registered guards, and guards over JSON lines."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from langdeploy.cli.common import console, err_console, handle_errors, names_table
from langdeploy.guards.base import STAGES, GuardContext
from langdeploy.guards.config import build_chain_guards, load_guards_file
from langdeploy.guards.registry import guard_registry

app = typer.Typer(help="Guardrails: list the guards, scan text with them.", no_args_is_help=True)


@app.command("list")
@handle_errors
def list_guards(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the registered guards (built-in and plugins)."""
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
        None, "--config", help="guards.yaml (default: the built-in defaults)."
    ),
    chain: str = typer.Option("chat", help="Whose guards to use from the config."),
) -> None:
    """Read JSON lines {"text": "..."} from stdin; write one JSON line per input, in order:
    {"allowed": bool, "text": "<after redaction>", "violations": [{"guard", "category",
    "action"}]}."""
    if stage not in STAGES:
        raise typer.BadParameter(f"{stage!r}; use one of {', '.join(STAGES)}", param_hint="--stage")
    guards = build_chain_guards(load_guards_file(config), chain, source=config or "defaults")
    pipeline = getattr(guards, stage)
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
