"""`langdeploy eval DATASET.jsonl --model A --model B ...`: compare candidates on your data."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from langdeploy.cli.common import console, err_console, handle_errors, settings_from
from langdeploy.errors import ConfigError, InputError


@handle_errors
def eval_command(
    dataset: Path = typer.Argument(
        ..., help='JSON lines: {"input": "...", "expected": "..."} per line (or "messages").'
    ),
    model: list[str] = typer.Option(
        ..., "--model", "-m", help="A candidate: catalog name or .gguf path. Repeat for more."
    ),
    chain: str | None = typer.Option(
        None, help="The chain each example runs through (default: the app's first served chain)."
    ),
    out: Path = typer.Option(
        Path("eval-results"), "--out", help="Directory for results.json, report.html, cache."
    ),
    bias: bool = typer.Option(False, "--bias", help="Also run the bias probes (BBQ, swaps)."),
    bias_limit: int | None = typer.Option(
        None, min=1, help="At most N BBQ probes and N swap templates per category (quick runs)."
    ),
    probes: Path | None = typer.Option(
        None, help="Your own BBQ-format probes (JSON lines) instead of the shipped set."
    ),
    counterfactual: Path | None = typer.Option(
        None, help="Your own counterfactual templates (JSON lines with {person})."
    ),
    repeat: int = typer.Option(1, min=1, max=100, help="Run each example N times; show spread."),
    temperature: float = typer.Option(0.0, min=0.0, max=2.0, help="Sampling temperature."),
    max_tokens: int | None = typer.Option(
        None, min=1, max=32768, help="Most tokens per answer (default: model.max_tokens)."
    ),
    seed: int = typer.Option(7, min=-1, help="Base seed; repeat r uses seed + r. -1: random."),
    judge: str | None = typer.Option(
        None, help="LLM-as-judge on a local model: catalog name or .gguf path."
    ),
    judge_url: str | None = typer.Option(
        None, help="LLM-as-judge behind an OpenAI-compatible API, e.g. http://127.0.0.1:8080/v1."
    ),
    judge_model: str = typer.Option("judge", help="Model name sent to --judge-url."),
    judge_api_key_file: Path | None = typer.Option(
        None, help="File holding the API key for --judge-url (none needed for local servers)."
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the cache."),
    app_dir: Path | None = typer.Option(
        None, "--app-dir", help="App directory with langdeploy.toml (default: found from cwd)."
    ),
) -> None:
    """Evaluate candidate models on your own data: quality, latency, bias; table and report."""
    from langdeploy.evaluate import EvalConfig, run_eval
    from langdeploy.evaluate import Progress as EvalProgress
    from langdeploy.evaluate.metrics import JudgeLike
    from langdeploy.evaluate.report import bias_tables, comparison_table

    if judge and judge_url:
        raise InputError("Both --judge and --judge-url are set.", fix="Choose one judge.")
    from langdeploy.runtime import load_app

    runtime = load_app(settings_from(app_dir))
    settings = runtime.settings
    chain = chain or runtime.served[0]
    judge_obj: JudgeLike | None = None
    if judge_url:
        from langdeploy.evaluate.judge import openai_judge

        key = None
        if judge_api_key_file is not None:
            try:
                key = judge_api_key_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"Could not read --judge-api-key-file {judge_api_key_file}: {exc}.",
                    fix="Point it at a readable file that holds only the key.",
                ) from None
        judge_obj = openai_judge(judge_url, judge_model, api_key=key)
    elif judge:
        from langdeploy.evaluate.judge import local_judge
        from langdeploy.models.factory import build_model

        judge_settings = settings.model.model_copy(
            update={"name": judge, "temperature": 0.0, "max_tokens": 48, "seed": 0}
        )
        handle = build_model(judge_settings, shared=True)
        handle.load()
        judge_obj = local_judge(judge, handle.chat_model)

    config = EvalConfig(
        dataset=dataset,
        models=list(model),
        out_dir=out,
        chain=chain,
        repeat=repeat,
        temperature=temperature,
        max_tokens=max_tokens,
        seed=seed,
        use_cache=not no_cache,
        bias=bias,
        bias_limit=bias_limit,
        probes=probes,
        counterfactual=counterfactual,
        judge=judge_obj,
    )
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("loading models", total=None)

        def start(total: int) -> None:
            bar.update(task, total=total, description="evaluating")

        def advance(desc: str) -> None:
            bar.update(task, advance=1, description=desc)

        results = run_eval(config, runtime, EvalProgress(start=start, advance=advance))
    console.print(comparison_table(results))
    for table in bias_tables(results):
        console.print(table)
    for what, why in results["unavailable"].items():
        if why:
            console.print(f"[dim]{what}: n/a ({why})[/]")
    cached = results["cache"]["rows_cached"]
    if cached:
        console.print(
            f"[yellow]{cached} row(s) came from the cache ({results['cache']['path']}); "
            "their latency is not counted. Pass --no-cache to measure everything afresh.[/]"
        )
    console.print(f"Wrote {out / 'results.json'}, {out / 'report.html'} and {out / 'summary.md'}")
