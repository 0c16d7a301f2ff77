"""`langdeploy deploy render|validate|targets|fetch-model`: deploy manifests from the settings."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from langdeploy.cli.common import console, handle_errors, settings_from
from langdeploy.errors import LangdeployError

app = typer.Typer(
    help="Render deploy manifests (Docker, compose, Kubernetes, VM) and check them offline.",
    no_args_is_help=True,
)

_STATUS_STYLE = {"pass": "[green]pass[/]", "fail": "[bold red]FAIL[/]", "skip": "[yellow]skip[/]"}


@app.command("targets")
@handle_errors
def targets() -> None:
    """List the deploy targets (built-in and from plugins)."""
    from langdeploy.deploy import deploy_targets

    table = Table(title="deploy targets")
    table.add_column("target", style="bold")
    table.add_column("what it writes")
    for name, target in deploy_targets.items():
        table.add_row(name, target.description)
    console.print(table)


@app.command("render")
@handle_errors
def render(
    target: str = typer.Option(..., "--target", "-t", help="docker, compose, k8s or vm."),
    gpu: bool = typer.Option(
        False, "--gpu", help="Make the GPU variant (vLLM) the default of what is rendered."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Directory to create (default: deploy/<target> in the app)."
    ),
    app_dir: Path | None = typer.Option(
        None, "--app-dir", help="App directory with langdeploy.toml (default: found from cwd)."
    ),
) -> None:
    """Render the manifests of one target from the app's settings."""
    from langdeploy.deploy import deploy_targets
    from langdeploy.deploy import render as do_render

    if target not in deploy_targets:
        raise LangdeployError(
            f"Unknown deploy target {target!r}.",
            fix=f"Use --target with one of: {', '.join(deploy_targets.names())}.",
        )
    from langdeploy.runtime import load_app

    runtime = load_app(settings_from(app_dir))
    written, files = do_render(runtime.settings, target, out, gpu=gpu, needs=runtime.needs())
    console.print(f"Rendered {target} ({len(files)} files) into {written}:")
    for name in files:
        console.print(f"  {name}", highlight=False)
    console.print(f"Check them offline with: langdeploy deploy validate {written}")
    usage = deploy_targets.get(target).usage
    if usage:
        console.print("Then: " + usage.format(out=_shown(written)), highlight=False)


def _shown(path: Path) -> str:
    """The path relative to the current directory when it is below it, as a user would type it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@app.command("validate")
@handle_errors
def validate(
    directory: Path = typer.Argument(..., help="A directory that `deploy render` wrote."),
    kubernetes_version: str | None = typer.Option(
        None,
        "--kubernetes-version",
        help="Kubernetes version to validate against (default: deploy.kubernetes_version).",
    ),
    app_dir: Path | None = typer.Option(
        None, "--app-dir", help="App directory with langdeploy.toml (default: found from cwd)."
    ),
) -> None:
    """Check rendered manifests offline and print a table of results; exit 1 on any failure."""
    from langdeploy.deploy.validate import validate_dir

    version = kubernetes_version or settings_from(app_dir).deploy.kubernetes_version
    results = validate_dir(directory, kubernetes_version=version)
    table = Table(title=f"langdeploy deploy validate {directory}", show_lines=True)
    table.add_column("check", style="bold")
    table.add_column("subject")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    for r in results:
        table.add_row(r.check, r.subject, _STATUS_STYLE[r.status], r.detail)
    console.print(table)
    failed = [r for r in results if r.status == "fail"]
    skipped = [r for r in results if r.status == "skip"]
    note = f" ({len(skipped)} skipped)" if skipped else ""
    if failed:
        console.print(f"[bold red]{len(failed)} of {len(results)} checks failed{note}.[/]")
        raise typer.Exit(1)
    console.print(f"[green]All {len(results)} checks passed{note}.[/]")


@app.command("fetch-model")
@handle_errors
def fetch_model(
    url: str = typer.Argument(..., help="https URL of the model file."),
    dest: Path = typer.Argument(..., help="Where the file goes (for example /models/x.gguf)."),
    sha256: str | None = typer.Option(None, "--sha256", help="Expected SHA-256 of the file."),
) -> None:
    """Download a model file once (skipped when it is there): the init container's step."""
    from langdeploy.deploy.fetch import fetch_model as do_fetch

    if do_fetch(url, dest, sha256=sha256):
        console.print(f"Fetched {url} into {dest}.", highlight=False)
    else:
        console.print(f"{dest} is already there; nothing to fetch.", highlight=False)
