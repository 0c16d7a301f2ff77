"""`langdeploy models list|show`: model cards read from the GGUF header."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from langdeploy.cli.common import console, handle_errors, names_table
from langdeploy.errors import LangdeployError
from langdeploy.models import catalog
from langdeploy.models.card_view import card_rows
from langdeploy.models.card_view import file_size as _size

app = typer.Typer(help="Model catalog and model cards.", no_args_is_help=True)


@app.command("list")
@handle_errors
def list_models(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the catalog's models with the key facts of their cards."""
    cards, problems = [], []
    for name in catalog.known_names():
        try:
            cards.append(catalog.model_card(name))
        except LangdeployError as exc:
            problems.append((name, str(exc)))
    if as_json:
        out = [c.as_dict() for c in cards] + [{"name": n, "error": e} for n, e in problems]
        console.print_json(json.dumps(out))
        return
    table = names_table(
        "langdeploy models",
        "name",
        [c.name for c in cards] + [n for n, _ in problems],
        ["arch", "params", "quant", "context", "licence", "chat template", "instruct", "size"],
    )
    for c in cards:
        table.add_row(
            c.name, c.architecture, c.parameters_human, c.quantization,
            str(c.context_length or "?"), c.license or "?",
            "yes" if c.chat_template else f"no ({c.chat_format or 'fallback'})",
            "yes" if c.instruct else "no (base)", _size(c.file_size),
        )  # fmt: skip
    for name, error in problems:
        table.add_row(name, "[red]unavailable[/]", "", "", "", "", "", "", error)
    console.print(table)
    console.print("Any local .gguf path works as model.name too.")


@app.command("show")
@handle_errors
def show(
    name: str = typer.Argument(..., help="A catalog name or a path to a .gguf file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Print one model card."""
    card = catalog.model_card(name)
    gpu = catalog.gpu_offload_supported()
    data = card.as_dict()
    data["llama_cpp_gpu_offload"] = gpu
    if as_json:
        console.print_json(json.dumps(data))
        return
    table = Table(title=f"model card: {card.name}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    rows = card_rows(data)
    rows.append(
        (
            "llama.cpp GPU offload",
            "not installed" if gpu is None else ("supported" if gpu else "CPU-only build"),
        )
    )
    for note in card.notes:
        rows.append(("note", note))
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
