"""A full queue refuses at once with 429 and Retry-After; admitted streams still complete."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from langdeploy.models.engine import GenParams, _Job
from langdeploy.models.factory import LocalModel, build_model
from langdeploy.serve import create_app
from tests.conftest import make_settings
from tests.servers import UvicornThread
from tests.sse import parse_sse


@pytest.fixture(scope="module")
def small_queue(empty_dir: Path) -> Iterator[tuple[UvicornThread, LocalModel]]:
    # queue_size=1: one request generating, one waiting, the rest refused.
    settings = make_settings(empty_dir, model={"queue_size": 1, "max_tokens": 48})
    handle = build_model(settings.model, shared=True)
    assert isinstance(handle, LocalModel)
    handle.load()
    with UvicornThread(create_app(settings, model=handle)) as server:
        yield server, handle


def _until(condition: Callable[[], bool], what: str) -> None:
    """Wait for a state the test can observe; the bound only catches a hang."""
    deadline = time.monotonic() + 300
    while not condition():
        assert time.monotonic() < deadline, f"never saw: {what}"
        threading.Event().wait(0.01)


def test_full_queue_gets_429_and_admitted_streams_complete(
    small_queue: tuple[UvicornThread, LocalModel],
) -> None:
    server, handle = small_queue
    engine = handle.engine
    url = f"{server.url}/chat/stream"
    # Hold the model's worker inside a generation until the test lets go, so the refusals
    # below happen at a known state rather than at whatever speed the machine decodes.
    holding, release = threading.Event(), threading.Event()

    def hold(item: Any) -> None:
        holding.set()
        release.wait(300)

    engine._submit(
        _Job(
            messages=[{"role": "user", "content": "Hi."}], params=GenParams(max_tokens=4), sink=hold
        )
    )
    assert holding.wait(300)

    def one(i: int) -> tuple[int, str, dict[str, str]]:
        body = {"input": {"messages": [{"type": "human", "content": f"Write a poem number {i}."}]}}
        with httpx.Client(timeout=300) as c:
            r = c.post(url, json=body)
        return r.status_code, r.text, dict(r.headers)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        # Two are admitted (queue_size + 1) and wait in the engine's queue ...
        admitted = [pool.submit(one, i) for i in range(2)]
        _until(lambda: engine.queue_depth == 2, "two requests waiting for the model")
        # ... so every further one is refused at once, while the process stays responsive.
        refused = [one(i) for i in range(2, 5)]
        assert httpx.get(f"{server.url}/healthz", timeout=60).status_code == 200
        release.set()
        served = [f.result() for f in admitted]
    for status, text, headers in refused:
        assert status == 429, text
        assert int(headers["retry-after"]) >= 1
        assert "queue_size" in text
    for status, text, _ in served:
        assert status == 200, text
        names = [e for e, _ in parse_sse(text)]
        assert names[-1] == "end" and "error" not in names


def test_bench_cli_reports_p95_against_a_live_server(
    live_server: UvicornThread, tmp_path: Path
) -> None:
    import json

    from typer.testing import CliRunner

    from langdeploy.cli import app

    out = tmp_path / "bench.json"
    r = CliRunner().invoke(
        app,
        ["bench", "--url", live_server.url, "--requests", "4", "--concurrency", "2",
         "--max-tokens", "8", "--out", str(out)],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "p95" in r.output
    data = json.loads(out.read_text())
    assert data["summary"]["requests"] == 4 and data["summary"]["errors"] == 0
    assert data["summary"]["ttft_p95_s"] > 0
    # max_tokens went through LangServe's per-request config.
    assert all(0 < req["tokens"] <= 8 for req in data["requests"])
