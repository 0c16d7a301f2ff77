"""Measure a served chain as a client sees it: time to first token, tokens/s, p95 under load.

Talks to LangServe's ``/{chain}/stream`` over HTTP and reads the server-sent events as they
arrive, so the figures include everything between the user and the model.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx


@dataclass
class RequestResult:
    """One streamed request, timed from the client."""

    ok: bool
    status: int
    ttft_s: float | None = None
    total_s: float = 0.0
    tokens: int = 0
    error: str | None = None
    text: str = ""

    @property
    def decode_tokens_per_s(self) -> float | None:
        """Tokens after the first, over the time after the first: the model's decode speed."""
        if self.ttft_s is None or self.tokens < 2 or self.total_s <= self.ttft_s:
            return None
        return (self.tokens - 1) / (self.total_s - self.ttft_s)


@dataclass
class Summary:
    requests: int
    errors: int
    concurrency: int
    wall_s: float
    ttft_p50_s: float | None
    ttft_p95_s: float | None
    latency_p50_s: float | None
    latency_p95_s: float | None
    decode_tokens_per_s_median: float | None
    throughput_tokens_per_s: float
    statuses: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    # Nearest-rank: the smallest value with at least q of the samples at or below it.
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 1))))
    return ordered[rank - 1]


def summarize(results: Sequence[RequestResult], concurrency: int, wall_s: float) -> Summary:
    ok = [r for r in results if r.ok]
    ttfts = [r.ttft_s for r in ok if r.ttft_s is not None]
    totals = [r.total_s for r in ok]
    decode = [d for r in ok if (d := r.decode_tokens_per_s) is not None]
    statuses: dict[str, int] = {}
    for r in results:
        statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
    return Summary(
        requests=len(results),
        errors=len(results) - len(ok),
        concurrency=concurrency,
        wall_s=wall_s,
        ttft_p50_s=_percentile(ttfts, 0.5),
        ttft_p95_s=_percentile(ttfts, 0.95),
        latency_p50_s=_percentile(totals, 0.5),
        latency_p95_s=_percentile(totals, 0.95),
        decode_tokens_per_s_median=statistics.median(decode) if decode else None,
        throughput_tokens_per_s=sum(r.tokens for r in ok) / wall_s if wall_s > 0 else 0.0,
        statuses=statuses,
    )


def _content(data: Any) -> str:
    """The generated text in one streamed chunk, whatever the chain's output type: a message
    chunk's content, a string, or the text fields of a structured chunk (rag's ``answer``, an
    extract chain's partial fields); lists such as rag's ``sources`` are not generated text."""
    if isinstance(data, str):
        return data
    if not isinstance(data, dict):
        return ""
    if str(data.get("type", "")).endswith("MessageChunk"):
        content = data.get("content", "")
        return content if isinstance(content, str) else ""
    return "".join(v for v in data.values() if isinstance(v, str))


async def stream_once(
    client: httpx.AsyncClient,
    url: str,
    payload: dict[str, Any],
    config: dict[str, Any] | None = None,
) -> RequestResult:
    """POST ``payload`` to a LangServe ``.../stream`` URL and time the events."""
    body: dict[str, Any] = {"input": payload}
    if config:
        body["config"] = config
    start = time.perf_counter()
    first: float | None = None
    tokens = 0
    parts: list[str] = []
    event = "message"
    try:
        async with client.stream("POST", url, json=body) as response:
            if response.status_code != 200:
                text = (await response.aread()).decode("utf-8", "replace")
                return RequestResult(
                    ok=False, status=response.status_code, total_s=time.perf_counter() - start,
                    error=text[:300],
                )  # fmt: skip
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event == "data":
                    piece = _content(json.loads(line[5:]))
                    if piece:
                        if first is None:
                            first = time.perf_counter()
                        tokens += 1
                        parts.append(piece)
                elif line.startswith("data:") and event == "error":
                    return RequestResult(
                        ok=False, status=200, total_s=time.perf_counter() - start,
                        error=line[5:].strip()[:300],
                    )  # fmt: skip
    except httpx.HTTPError as exc:
        return RequestResult(
            ok=False, status=0, total_s=time.perf_counter() - start, error=type(exc).__name__
        )
    end = time.perf_counter()
    return RequestResult(
        ok=True,
        status=200,
        ttft_s=(first - start) if first is not None else None,
        total_s=end - start,
        tokens=tokens,
        text="".join(parts),
    )


async def run_load(
    url: str,
    payloads: Sequence[dict[str, Any]],
    *,
    concurrency: int = 1,
    timeout_s: float = 300.0,
    config: dict[str, Any] | None = None,
    on_result: Callable[[RequestResult], None] | None = None,
) -> tuple[list[RequestResult], Summary]:
    """Send every payload once, ``concurrency`` at a time; bounded in count and time."""
    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:

        async def one(payload: dict[str, Any]) -> RequestResult:
            async with sem:
                result = await stream_once(client, url, payload, config)
            if on_result is not None:
                on_result(result)
            return result

        start = time.perf_counter()
        results = await asyncio.gather(*(one(p) for p in payloads))
        wall = time.perf_counter() - start
    return list(results), summarize(results, concurrency, wall)
