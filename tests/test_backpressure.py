"""A full queue refuses at once with 429 and Retry-After; admitted streams still complete."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from langdeploy.models.factory import build_model
from langdeploy.serve import create_app
from tests.conftest import make_settings
from tests.servers import UvicornThread
from tests.sse import parse_sse


@pytest.fixture(scope="module")
def small_queue_server(empty_dir: Path) -> Iterator[UvicornThread]:
    # queue_size=1: one request generating, one waiting, the rest refused.
    settings = make_settings(empty_dir, model={"queue_size": 1, "max_tokens": 48})
    handle = build_model(settings.model, shared=True)
    handle.load()
    with UvicornThread(create_app(settings, model=handle)) as server:
        yield server


def test_full_queue_gets_429_and_admitted_streams_complete(
    small_queue_server: UvicornThread,
) -> None:
    url = f"{small_queue_server.url}/chat/stream"

    def one(i: int) -> tuple[int, str, dict[str, str]]:
        body = {"input": {"messages": [{"type": "human", "content": f"Write a poem number {i}."}]}}
        with httpx.Client(timeout=300) as c:
            r = c.post(url, json=body)
        return r.status_code, r.text, dict(r.headers)

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        results = list(pool.map(one, range(6)))
        # The process stays responsive while the model is saturated.
        assert httpx.get(f"{small_queue_server.url}/healthz", timeout=10).status_code == 200
    statuses = sorted(s for s, _, _ in results)
    assert 429 in statuses and 200 in statuses and set(statuses) <= {200, 429}
    for status, text, headers in results:
        if status == 429:
            assert int(headers["retry-after"]) >= 1
            assert "queue_size" in text
        else:
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
