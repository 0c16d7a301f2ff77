"""Raw in-process llama.cpp against the served /chat/stream: tokens/s and time to first token.

Same model, prompt, sampling, max tokens, seed and threads on both sides; the runs alternate
(raw, served, raw, served...) so that drift on a busy machine hits both alike. The server is a
real `langdeploy serve` process on 127.0.0.1. Prints the ratios and writes JSON.

    python benchmarks/serving.py [--rounds 8] [--max-tokens 128] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from langdeploy.bench import RequestResult, stream_once
from langdeploy.models.catalog import resolve
from langdeploy.models.engine import default_threads

PROMPTS = [
    "Explain in a few sentences why the sky is blue.",
    "Write a short story about a lighthouse keeper.",
    "Give three tips for writing clear emails.",
    "Describe how a bicycle works.",
    "What is the water cycle? Explain simply.",
    "List some good habits for learning a new language.",
    "Explain what a database index is.",
    "Describe a walk through a forest in autumn.",
    "Why do cats purr? Give a short answer.",
    "Explain the rules of chess briefly.",
    "What makes a good team leader?",
    "Describe how bread is made.",
]


def raw_run(llm: Any, prompt: str, args: argparse.Namespace) -> RequestResult:
    start = time.perf_counter()
    first = None
    tokens = 0
    parts = []
    for chunk in llm.create_chat_completion(
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        temperature=0.0,
        top_k=40,
        top_p=0.95,
        repeat_penalty=1.1,
        max_tokens=args.max_tokens,
        seed=args.seed,
    ):
        text = chunk["choices"][0].get("delta", {}).get("content") or ""
        if text:
            if first is None:
                first = time.perf_counter()
            tokens += 1
            parts.append(text)
    end = time.perf_counter()
    return RequestResult(
        ok=True, status=0, ttft_s=(first or end) - start, total_s=end - start, tokens=tokens,
        text="".join(parts),
    )  # fmt: skip


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(args: argparse.Namespace, port: int, log: Any) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "LANGDEPLOY_MODEL__NAME": args.model,
        "LANGDEPLOY_MODEL__N_CTX": str(args.n_ctx),
        "LANGDEPLOY_MODEL__N_THREADS": str(args.threads),
        "LANGDEPLOY_MODEL__TEMPERATURE": "0",
        "LANGDEPLOY_MODEL__TOP_K": "40",
        "LANGDEPLOY_MODEL__TOP_P": "0.95",
        "LANGDEPLOY_MODEL__REPEAT_PENALTY": "1.1",
        "LANGDEPLOY_MODEL__MAX_TOKENS": str(args.max_tokens),
        "LANGDEPLOY_MODEL__SEED": str(args.seed),
        "LANGDEPLOY_SERVER__CHAINS": "chat",
        "LANGDEPLOY_SERVER__LOG_LEVEL": "warning",
        # Off by default: this measures the serving layer. With --guards, the output guards'
        # hold-back window (about 96 characters) adds to the time to first token.
        "LANGDEPLOY_GUARDS__ENABLED": "true" if args.guards else "false",
    }
    cmd = [
        sys.executable,
        "-m",
        "langdeploy.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    # An empty working directory: no langdeploy.toml or .env of the caller's applies.
    proc = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tempfile.mkdtemp()
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"langdeploy serve exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit("langdeploy serve did not become ready within 180 s")


async def served_run(client: httpx.AsyncClient, url: str, prompt: str) -> RequestResult:
    return await stream_once(client, url, {"messages": [{"type": "human", "content": prompt}]})


async def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=300)


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=default_threads())
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--guards", action="store_true", help="Serve with the default guards on.")
    args = parser.parse_args()

    from llama_cpp import Llama

    path, _ = resolve(args.model)
    llm = Llama(
        model_path=str(path), n_ctx=args.n_ctx, n_threads=args.threads,
        n_threads_batch=args.threads, seed=args.seed, verbose=False,
    )  # fmt: skip
    port = free_port()
    url = f"http://127.0.0.1:{port}/chat/stream"
    with tempfile.TemporaryFile() as log:
        server = start_server(args, port, log)
        # One event loop and one keep-alive connection for every served round, as a real client
        # would hold them: the figures are the server's, not connection set-up.
        runner = asyncio.Runner()
        client = runner.run(_client())
        try:
            # Warm both sides once (first-call allocations, the HTTP connection).
            raw_run(llm, "Hello.", args)
            runner.run(served_run(client, url, "Hello."))
            pairs: list[tuple[RequestResult, RequestResult]] = []
            for i in range(args.rounds):
                prompt = PROMPTS[i % len(PROMPTS)]
                raw = raw_run(llm, prompt, args)
                served = runner.run(served_run(client, url, prompt))
                if not served.ok:
                    raise SystemExit(f"served request failed: {served.error}")
                pairs.append((raw, served))
                print(
                    f"round {i + 1}/{args.rounds}: raw {raw.tokens} tok, "
                    f"ttft {raw.ttft_s * 1000:.1f} ms, {raw.decode_tokens_per_s or 0:.1f} tok/s | "
                    f"served {served.tokens} tok, ttft {(served.ttft_s or 0) * 1000:.1f} ms, "
                    f"{served.decode_tokens_per_s or 0:.1f} tok/s",
                    flush=True,
                )
        finally:
            runner.run(client.aclose())
            runner.close()
            server.terminate()
            server.wait(timeout=30)
    llm.close()

    raw_tps = med([r.decode_tokens_per_s or 0 for r, _ in pairs])
    srv_tps = med([s.decode_tokens_per_s or 0 for _, s in pairs])
    raw_ttft = med([r.ttft_s or 0 for r, _ in pairs])
    srv_ttft = med([s.ttft_s or 0 for _, s in pairs])
    overhead = med([(s.ttft_s or 0) - (r.ttft_s or 0) for r, s in pairs])
    # With guards, held-back pieces leave together, so events are fewer than tokens and the
    # events/s above understate the stream; the whole answer's time compares like with like.
    raw_total = med([r.total_s for r, _ in pairs])
    srv_total = med([s.total_s for _, s in pairs])
    same_text = sum(r.text == s.text for r, s in pairs)
    result = {
        "benchmark": "serving",
        "model": args.model,
        "params": {"max_tokens": args.max_tokens, "n_ctx": args.n_ctx, "threads": args.threads,
                   "seed": args.seed, "temperature": 0.0, "rounds": args.rounds,
                   "guards": args.guards},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "raw": {"decode_tokens_per_s_median": raw_tps, "ttft_ms_median": raw_ttft * 1000},
        "served": {"decode_tokens_per_s_median": srv_tps, "ttft_ms_median": srv_ttft * 1000},
        "tokens_per_s_ratio": srv_tps / raw_tps if raw_tps else None,
        "ttft_overhead_ms_median": overhead * 1000,
        "total_ms_median": {"raw": raw_total * 1000, "served": srv_total * 1000},
        "identical_answers": f"{same_text}/{len(pairs)}",
        "targets": {"tokens_per_s_ratio_min": 0.95, "ttft_overhead_ms_max": 15.0},
        "rounds": [
            {"prompt": PROMPTS[i % len(PROMPTS)],
             "raw": {"ttft_ms": r.ttft_s * 1000 if r.ttft_s else None, "tokens": r.tokens,
                     "decode_tokens_per_s": r.decode_tokens_per_s},
             "served": {"ttft_ms": s.ttft_s * 1000 if s.ttft_s else None, "tokens": s.tokens,
                        "decode_tokens_per_s": s.decode_tokens_per_s}}
            for i, (r, s) in enumerate(pairs)
        ],
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / ("serving-guards.json" if args.guards else "serving.json")
    out.write_text(json.dumps(result, indent=2))
    ratio = result["tokens_per_s_ratio"]
    print()
    print(
        f"decode tokens/s  raw {raw_tps:8.1f}   served {srv_tps:8.1f}   ratio {ratio:.3f} (target >= 0.95)"
    )
    print(f"TTFT median      raw {raw_ttft * 1000:6.1f} ms  served {srv_ttft * 1000:6.1f} ms  "
          f"overhead {overhead * 1000:.1f} ms (target <= 15 ms)")  # fmt: skip
    print(f"whole answer     raw {raw_total * 1000:6.1f} ms  served {srv_total * 1000:6.1f} ms"
          + ("  (with guards, events/s undercount: held-back pieces leave together)"
             if args.guards else ""))  # fmt: skip
    print(f"identical answers: {same_text}/{len(pairs)}   written: {out}")


if __name__ == "__main__":
    main()
