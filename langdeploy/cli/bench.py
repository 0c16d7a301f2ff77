"""`langdeploy bench`: load a running server and report TTFT, tokens/s and p95 latency."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from langdeploy.bench import RequestResult, run_load
from langdeploy.cli.common import console, handle_errors
from langdeploy.errors import InputError
from langdeploy.fsutil import atomic_write_text

DEFAULT_PROMPTS = [
    "Explain in a few sentences why the sky is blue.",
    "Write a short story about a lighthouse keeper.",
    "Give three tips for writing clear emails.",
    "Describe how a bicycle works.",
]


def _sample_input(url: str, chain: str | None) -> tuple[str, dict[str, Any]]:
    """The chain (default: the first the server lists) and its sample input, as the server's
    index lists it (from the chain's spec)."""
    try:
        index = httpx.get(f"{url.rstrip('/')}/", headers={"accept": "application/json"}, timeout=30)
        chains = {c["name"]: c for c in index.json()["chains"]}
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"Could not read the chains that {url} serves: {exc}.",
            fix="Check --url: it must be a running langdeploy server (langdeploy serve).",
        ) from None
    if chain is None:
        if not chains:
            raise InputError(f"{url} serves no chain.", fix="Check server.chains on the server.")
        chain = next(iter(chains))
    if chain not in chains:
        raise InputError(
            f"{url} does not serve a chain {chain!r} (it serves {', '.join(chains)}).",
            fix="Pass --chain with one of those names.",
        )
    sample = chains[chain].get("sample_input")
    if not isinstance(sample, dict):
        raise InputError(
            f"The chain {chain!r} declares no sample input, so bench does not know what to send.",
            fix="Set sample_input on its ChainSpec (or extend a built-in chain that has one).",
        )
    return chain, sample


def fill_sample(sample: dict[str, Any], prompt: str) -> dict[str, Any]:
    """``sample`` with ``prompt`` in place of its text: the last message of a conversation, else
    the first string field (``text``, ``question``)."""
    if isinstance(sample.get("messages"), list):
        return {**sample, "messages": [{"type": "human", "content": prompt}]}
    for key, value in sample.items():
        if isinstance(value, str):
            return {**sample, key: prompt}
    return sample


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


@handle_errors
def bench(
    url: str = typer.Option("http://127.0.0.1:8000", help="Base URL of a langdeploy server."),
    chain: str | None = typer.Option(
        None, help="Chain to call (its /stream endpoint; default: the first the server serves)."
    ),
    requests: int = typer.Option(20, min=1, max=10000, help="Requests to send in all."),
    concurrency: int = typer.Option(4, min=1, max=1000, help="Requests in flight at once."),
    max_tokens: int | None = typer.Option(None, min=1, help="Per-request max_tokens."),
    temperature: float | None = typer.Option(None, min=0, max=2, help="Per-request temperature."),
    top_k: int | None = typer.Option(None, min=0, help="Per-request top_k (local models)."),
    prompts: Path | None = typer.Option(
        None, help="A text file with one prompt per line (default: a few built-in prompts)."
    ),
    out: Path | None = typer.Option(None, help="Write the summary and every request as JSON."),
) -> None:
    """Measure a served chain under load: TTFT, decode tokens/s, p50/p95 latency, errors."""
    lines = DEFAULT_PROMPTS
    if prompts is not None:
        try:
            lines = [
                ln.strip() for ln in prompts.read_text(encoding="utf-8").splitlines() if ln.strip()
            ]
        except OSError as exc:
            raise InputError(
                f"Cannot read {prompts}: {exc.strerror}.", fix="Pass a readable text file."
            ) from None
        if not lines:
            raise InputError(f"{prompts} holds no prompts.", fix="Put one prompt per line.")
    chain, sample = _sample_input(url, chain)
    if prompts is None and "messages" not in sample:
        # The built-in prompts are things to ask a chat; other chains get their own sample.
        lines = []
    payloads = [fill_sample(sample, lines[i % len(lines)]) if lines else sample
                for i in range(requests)]  # fmt: skip
    configurable = {
        k: v
        for k, v in (("max_tokens", max_tokens), ("temperature", temperature), ("top_k", top_k))
        if v is not None
    }
    config = {"configurable": configurable} if configurable else None
    target = f"{url.rstrip('/')}/{chain}/stream"

    with Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console,
    ) as progress:  # fmt: skip
        task = progress.add_task(f"{target} x{concurrency}", total=requests)

        def advance(_: RequestResult) -> None:
            progress.advance(task)

        results, summary = asyncio.run(
            run_load(target, payloads, concurrency=concurrency, config=config, on_result=advance)
        )

    table = Table(title=f"langdeploy bench: {requests} requests, {concurrency} at a time")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("errors", f"{summary.errors} (statuses {summary.statuses})"),
        ("TTFT p50 / p95", f"{_ms(summary.ttft_p50_s)} / {_ms(summary.ttft_p95_s)}"),
        ("latency p50 / p95", f"{_ms(summary.latency_p50_s)} / {_ms(summary.latency_p95_s)}"),
        ("decode tokens/s (median per request)", f"{summary.decode_tokens_per_s_median or 0:.1f}"),
        ("throughput tokens/s (all requests)", f"{summary.throughput_tokens_per_s:.1f}"),
        ("wall time", f"{summary.wall_s:.1f} s"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    failed = [r for r in results if not r.ok]
    if failed:
        console.print(f"[yellow]first error:[/] {failed[0].error}")
    if out is not None:
        data = {
            "url": target,
            "config": config,
            "summary": summary.as_dict(),
            "requests": [
                {"ok": r.ok, "status": r.status, "ttft_s": r.ttft_s, "total_s": r.total_s, "tokens": r.tokens,
                 "error": r.error}
                for r in results
            ],
        }  # fmt: skip
        atomic_write_text(out, json.dumps(data, indent=2))
        console.print(f"written: {out}")
    if summary.errors == summary.requests:
        raise typer.Exit(1)
