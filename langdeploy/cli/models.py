"""`langdeploy models list|show`: model cards read from the GGUF header."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from langdeploy.cli.common import console, handle_errors
from langdeploy.errors import LangdeployError
from langdeploy.models import catalog

app = typer.Typer(help="Model catalog and model cards.", no_args_is_help=True)


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n < 2**30 else f"{n / 2**30:.2f} GiB"


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
    table = Table(title="langdeploy models")
    for col in (
        "name",
        "arch",
        "params",
        "quant",
        "context",
        "licence",
        "chat template",
        "instruct",
        "size",
    ):
        table.add_column(col)
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
    rows = [
        ("description", card.description),
        ("source", card.source),
        ("path", card.path),
        ("architecture", card.architecture),
        ("parameters", f"{card.parameters_human} ({card.parameters:,})"),
        ("quantization", card.quantization),
        ("context length", str(card.context_length or "?")),
        ("licence", card.license or "? (not in the GGUF metadata)"),
        ("chat template", "present" if card.chat_template else "absent"),
        ("chat format", card.chat_format or "from the GGUF template"),
        ("instruction-tuned", "yes" if card.instruct else "no: a base model"),
        ("file size", _size(card.file_size)),
        (
            "llama.cpp GPU offload",
            "not installed" if gpu is None else ("supported" if gpu else "CPU-only build"),
        ),
    ]
    for note in card.notes:
        rows.append(("note", note))
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
