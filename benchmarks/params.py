"""How sampling and runtime parameters change latency: TTFT and decode tokens/s.

Varies one parameter at a time from a baseline (temperature, top-k, max tokens, threads,
context size) on the bundled model through langdeploy's engine, the path a served request takes.
Writes JSON and a PNG chart.

    python benchmarks/params.py [--model smollm2-135m] [--repeats 3] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from langdeploy.models.catalog import resolve
from langdeploy.models.engine import GenParams, LlamaEngine, default_threads
from langdeploy.settings import BackendSettings

PROMPT = "Write a short story about a lighthouse keeper and a storm."
_runs = 0


def prompt() -> list[dict[str, str]]:
    """A prompt that differs from the last one near its start, so the KV cache of the previous
    run cannot serve it and TTFT includes the whole prompt evaluation."""
    global _runs
    _runs += 1
    return [{"role": "user", "content": f"Story {_runs}. {PROMPT}"}]


BASE = GenParams(temperature=0.7, top_k=40, top_p=0.95, max_tokens=96, seed=42)
SWEEPS: dict[str, list[Any]] = {
    "temperature": [0.0, 0.7, 1.5],
    "top_k": [1, 40, 400],
    "max_tokens": [32, 96, 256],
}


def measure(engine: LlamaEngine, params: GenParams, repeats: int) -> dict[str, float]:
    ttfts, rates, tokens = [], [], []
    for _ in range(repeats):
        start = time.perf_counter()
        first = None
        n = 0
        for delta in engine.stream(prompt(), params):
            if delta.text:
                n += 1
                if first is None:
                    first = time.perf_counter()
        end = time.perf_counter()
        if first is None:
            continue
        ttfts.append(first - start)
        tokens.append(n)
        if n > 1 and end > first:
            rates.append((n - 1) / (end - first))
    return {
        "ttft_ms": statistics.median(ttfts) * 1000 if ttfts else float("nan"),
        "decode_tokens_per_s": statistics.median(rates) if rates else float("nan"),
        "tokens": statistics.median(tokens) if tokens else 0,
    }


def engine_for(model: str, **settings: Any) -> LlamaEngine:
    path, _ = resolve(model)
    s = BackendSettings(name=model, **settings)
    engine = LlamaEngine(path, s)
    engine.load()
    return engine


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    threads = default_threads()
    rows: list[dict[str, Any]] = []

    def record(param: str, value: Any, figures: dict[str, float]) -> None:
        rows.append({"param": param, "value": value, **figures})
        print(
            f"{param:>12} = {value!s:<6} TTFT {figures['ttft_ms']:7.1f} ms   "
            f"decode {figures['decode_tokens_per_s']:6.1f} tok/s   ({figures['tokens']:.0f} tokens)",
            flush=True,
        )

    engine = engine_for(args.model, n_ctx=2048, n_threads=threads)
    measure(engine, replace(BASE, max_tokens=8), 1)  # warm-up
    for param, values in SWEEPS.items():
        for value in values:
            record(param, value, measure(engine, replace(BASE, **{param: value}), args.repeats))
    engine.close()
    # Threads and context size are load-time settings: one engine each.
    for n in sorted({1, 2, threads}):
        eng = engine_for(args.model, n_ctx=2048, n_threads=n)
        record("threads", n, measure(eng, BASE, args.repeats))
        eng.close()
    for n_ctx in (512, 2048, 8192):
        eng = engine_for(args.model, n_ctx=n_ctx, n_threads=threads)
        record("n_ctx", n_ctx, measure(eng, BASE, args.repeats))
        eng.close()

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "params.json").write_text(
        json.dumps(
            {"benchmark": "params", "model": args.model, "baseline": BASE.__dict__, "rows": rows},
            indent=2,
        )
    )
    plot(rows, args.out / "params.png", args.model)
    print(f"written: {args.out / 'params.json'} and {args.out / 'params.png'}")


def plot(rows: list[dict[str, Any]], path: Path, model: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    params = list(dict.fromkeys(r["param"] for r in rows))
    fig, axes = plt.subplots(2, len(params), figsize=(3.2 * len(params), 6), squeeze=False)
    for col, param in enumerate(params):
        sel = [r for r in rows if r["param"] == param]
        labels = [str(r["value"]) for r in sel]
        axes[0][col].bar(labels, [r["ttft_ms"] for r in sel], color="#4C72B0")
        axes[1][col].bar(labels, [r["decode_tokens_per_s"] for r in sel], color="#55A868")
        axes[0][col].set_title(param)
        axes[1][col].set_xlabel(param)
    axes[0][0].set_ylabel("TTFT (ms)")
    axes[1][0].set_ylabel("decode tokens/s")
    fig.suptitle(f"{model}: one parameter at a time from the baseline")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
