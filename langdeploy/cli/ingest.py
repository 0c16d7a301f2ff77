"""`langdeploy ingest PATH... [--collection NAME] [--prune]`: documents into the rag collection."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from langdeploy.cli.common import console, err_console, handle_errors, settings_from
from langdeploy.errors import ConfigError


@handle_errors
def ingest(
    paths: list[Path] = typer.Argument(
        ..., help="Files or directories (.txt .md .html .pdf .jsonl; directories recursively)."
    ),
    collection: str | None = typer.Option(
        None, "--collection", "-c", help="Collection to write (retrieval.collection)."
    ),
    prune: bool = typer.Option(
        False, "--prune", help="Remove the chunks of files under PATH that no longer exist."
    ),
    app_dir: Path | None = typer.Option(
        None, "--app-dir", help="App directory with langdeploy.toml (default: found from cwd)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Ingest documents into the Chroma collection that the rag chain answers from.

    Re-running is cheap: unchanged files are skipped without embedding, a changed file replaces
    its old chunks, and an interrupted run is completed by the next one.
    """
    from langdeploy.retrieval.ingest import ingest as run_ingest
    from langdeploy.runtime import load_app

    try:
        settings = settings_from(app_dir, retrieval__collection=collection)
    except ValidationError as exc:
        raise ConfigError(
            f"--collection {collection!r} is not a valid collection name: "
            f"{exc.errors()[0]['msg']}.",
            fix="Use 3-512 letters, digits, dots, dashes or underscores, starting and ending "
            "with a letter or digit.",
        ) from None
    load_app(settings)  # the app's modules, as every command sees them
    progress = Progress(
        TextColumn("[bold]ingest[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files"),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=err_console,
        transient=True,
        disable=as_json,
    )
    task = progress.add_task("", total=None)

    def on_progress(event: str, path: Path | None, total: int) -> None:
        if event == "start":
            progress.update(task, total=total)
        else:
            progress.update(task, advance=1, description=path.name if path else "")

    try:
        with progress:
            report = run_ingest(settings, paths, prune=prune, progress=on_progress)
    except KeyboardInterrupt:
        err_console.print(
            "[yellow]Interrupted.[/] The collection is consistent; run the same command again "
            "to finish the ingest."
        )
        raise typer.Exit(130) from None

    if as_json:
        console.print_json(json.dumps(report.as_dict()))
    else:
        r = report
        console.print(f"Ingested into collection {r.collection!r} at {r.location}", highlight=False)
        console.print(
            f"  files:  {r.files} ({r.files_new} new, {r.files_changed} changed, "
            f"{r.files_unchanged} unchanged, {len(r.failed)} failed"
            + (f", {r.files_empty} empty" if r.files_empty else "")
            + ")",
            highlight=False,
        )
        console.print(
            f"  chunks: {r.added} added, {r.updated} updated, {r.unchanged} unchanged, "
            f"{r.removed} removed; {r.total_chunks} in the collection",
            highlight=False,
        )
        if report.files_pruned:
            console.print(f"Pruned {report.files_pruned} files that no longer exist.")
        if report.ignored:
            console.print(f"Ignored {report.ignored} files in unsupported formats.")
    for path, error in report.failed:
        err_console.print(f"[yellow]skipped[/] {path}: {error}", highlight=False, soft_wrap=True)
    if report.failed and report.files == len(report.failed):
        raise typer.Exit(1)
