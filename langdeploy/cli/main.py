"""The main `langdeploy` app and the `serve` command."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from langdeploy import __version__
from langdeploy.cli import bench as bench_cli
from langdeploy.cli import deploy as deploy_cli
from langdeploy.cli import guards as guards_cli
from langdeploy.cli import ingest as ingest_cli
from langdeploy.cli import models as models_cli
from langdeploy.cli import new as new_cli
from langdeploy.cli.common import console, handle_errors, settings_from
from langdeploy.cli.eval import eval_command

app = typer.Typer(
    name="langdeploy",
    help="Put a large language model into production: guarded chains, served, deployable.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(models_cli.app, name="models")
app.add_typer(deploy_cli.app, name="deploy")
app.command("bench")(bench_cli.bench)
app.add_typer(guards_cli.app, name="guards")
app.command("ingest")(ingest_cli.ingest)
app.command("eval")(eval_command)
new_cli.install(app)


def _version(value: bool) -> None:
    if value:
        console.print(f"langdeploy {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """langdeploy."""


@app.command()
@handle_errors
def serve(
    host: str | None = typer.Option(None, help="Bind address (server.host)."),
    port: int | None = typer.Option(None, help="Port (server.port)."),
    model: str | None = typer.Option(None, help="Catalog name or .gguf path (model.name)."),
    app_dir: Path | None = typer.Option(
        None, "--app-dir", help="App directory with langdeploy.toml (default: found from cwd)."
    ),
) -> None:
    """Serve the enabled chains over REST (LangServe) under uvicorn."""
    import uvicorn

    from langdeploy.serve import create_app

    settings = settings_from(
        app_dir,
        flags={"server__host": "--host", "server__port": "--port", "model__name": "--model"},
        server__host=host,
        server__port=port,
        model__name=model,
    )
    logging.basicConfig(
        level=settings.server.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    application = create_app(settings)
    console.print(
        f"langdeploy serving {', '.join(application.state.chain_paths.values())} on "
        f"http://{settings.server.host}:{settings.server.port} (model {settings.model.name})"
    )
    uvicorn.run(
        application,
        host=settings.server.host,
        port=settings.server.port,
        log_level=settings.server.log_level,
        timeout_graceful_shutdown=10,
    )


def main() -> None:
    app()
