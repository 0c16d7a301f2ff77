"""Guard quality and speed: `make bench-guards`.

Quality, on the training split and on the held-out split (never trained or tuned on):
- prompt_injection: precision, recall and false-positive rate over labelled attacks and benign
  prompts (hard negatives included), per language too;
- pii + secrets: value recall (every labelled value gone after redaction), hard negatives left
  untouched, precision and false-positive rate at the text level.

Speed, in the same run: p50 of the default chat input-plus-output pipeline on a 4,000-character
text, and the time the bundled model takes to generate 64 tokens, the two interleaved (ten
generations among the pipeline runs) so that a drift in the machine's speed affects both. Writes
benchmarks/results/guards.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from guards_data import load_injection, load_pii  # noqa: E402

from langdeploy.guards.base import GuardContext  # noqa: E402
from langdeploy.guards.config import GuardsFile, build_chain_guards  # noqa: E402
from langdeploy.guards.injection import PromptInjectionGuard  # noqa: E402
from langdeploy.guards.pii import PIIGuard  # noqa: E402
from langdeploy.guards.pipeline import GuardPipeline  # noqa: E402
from langdeploy.guards.secrets import SecretsGuard  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "guards.json"


def rates(tp: int, fp: int, fn: int, tn: int) -> dict[str, float]:
    return {
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "fpr": fp / (fp + tn) if fp + tn else 0.0,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


def eval_injection(split: str) -> dict[str, Any]:
    guard = PromptInjectionGuard()
    ctx = GuardContext("input")
    data = load_injection(split)
    by_lang: dict[str, list[tuple[int, int]]] = {}
    pairs = []
    misses: list[str] = []
    for e in data:
        pred = int(bool(guard.scan(e.text, ctx)))
        pairs.append((e.label, pred))
        by_lang.setdefault(e.lang, []).append((e.label, pred))
        if pred != e.label:
            misses.append(f"{'FP' if pred else 'FN'} [{e.lang}/{e.kind}] {e.text[:90]}")
    hard = [(y, p) for (y, p), e in zip(pairs, data, strict=True) if e.kind == "hard"]
    result = _confusion(pairs)
    result["hard_negative_fpr"] = _confusion(hard)["fpr"] if hard else None
    result["by_language"] = {k: _confusion(v) for k, v in sorted(by_lang.items())}
    result["n_attacks"] = sum(1 for y, _ in pairs if y == 1)
    result["n_benign"] = sum(1 for y, _ in pairs if y == 0)
    result["threshold"] = guard.threshold
    result["errors"] = misses
    return result


def _confusion(pairs: list[tuple[int, int]]) -> dict[str, Any]:
    tp = sum(1 for y, p in pairs if y and p)
    fp = sum(1 for y, p in pairs if not y and p)
    fn = sum(1 for y, p in pairs if y and not p)
    tn = sum(1 for y, p in pairs if not y and not p)
    return rates(tp, fp, fn, tn)


def eval_redaction(split: str, guards: list[Any], label: str | None) -> dict[str, Any]:
    """Value recall (labelled values gone), hard negatives untouched, and text-level precision
    and false-positive rate for ``guards`` (all labels when ``label`` is None)."""
    pipeline = GuardPipeline("input", guards)
    rows = load_pii(split)
    values = gone = untouched = negatives = 0
    pairs: list[tuple[int, int]] = []
    errors: list[str] = []
    for row in rows:
        text = str(row["text"])
        redacted = pipeline.run(text).text
        changed = int(redacted != text)
        wanted = [
            v
            for v, lab in zip(row["values"], row["labels"], strict=True)
            if label is None or lab == label
        ]
        if row["kind"] == "positive":
            if not wanted:
                continue  # a row of the other guard's kind: not counted for this guard
            pairs.append((1, changed))
            for v in wanted:
                values += 1
                if v not in redacted:
                    gone += 1
                else:
                    errors.append(f"leaked {str(v)[:40]!r} in {text[:60]!r}")
        else:
            negatives += 1
            untouched += 1 - changed
            pairs.append((0, changed))
            if changed:
                errors.append(f"changed hard negative {text[:60]!r} -> {redacted[:60]!r}")
    out = _confusion(pairs)
    out["value_recall"] = gone / values if values else 1.0
    out["hard_negatives_untouched"] = untouched / negatives if negatives else 1.0
    out["n_values"] = values
    out["n_hard_negatives"] = negatives
    out["errors"] = errors
    return out


def long_text() -> str:
    base = (
        "Our quarterly review covers logistics, staffing and customer feedback. The warehouse in "
        "Lyon shipped 18,400 parcels, and the average delivery time fell to 2.3 days. Customers "
        "asked for weekend deliveries and clearer tracking pages. Contact ops@example.com or "
        "+33 1 42 68 53 00 for the detailed figures. "
    )
    text = (base * (4000 // len(base) + 1))[:4000]
    return text


def bench_pipeline(
    runs: int, count_tokens: Callable[[str], int] | None, between: Callable[[], None] | None = None
) -> dict[str, Any]:
    """The default chat pipelines, with the model's tokenizer for the token limit when loaded.
    ``between`` runs after every tenth of the runs (the model's generations), so that both are
    timed under the same conditions on a machine whose speed drifts."""
    guards = build_chain_guards(GuardsFile(), "chat", context={"max_tokens": 2048})
    text = long_text()
    times = []
    cpu = []
    for i in range(runs):
        # A different text each run, so no cache helps; the same length.
        sample = text[:-6] + f"{i:06d}"
        t0, c0 = time.perf_counter(), time.process_time()
        ctx = GuardContext("input", count_tokens=count_tokens)
        inp = guards.input.run_fields([sample], ctx)
        guards.output.run_fields(inp[0], ctx)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        if between is not None and (i + 1) % max(1, runs // 10) == 0:
            between()
    times.sort()
    return {
        "chars": len(text),
        "runs": runs,
        "p50_ms": statistics.median(times) * 1000,
        "p90_ms": times[int(0.9 * (len(times) - 1))] * 1000,
        "cpu_p50_ms": statistics.median(cpu) * 1000,
        "input_guards": [g.instance_name for g in guards.input.guards],
        "output_guards": [g.instance_name for g in guards.output.guards],
    }


def load_model(tokens: int) -> Any:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return None
    from langdeploy.models.factory import build_model
    from langdeploy.settings import ModelSettings

    settings = ModelSettings(max_tokens=tokens, temperature=0.0, seed=7)  # type: ignore[call-arg]
    handle = build_model(settings)
    handle.load()
    return handle


class ModelTimer:
    """Times 64-token generations of the bundled model, one per call."""

    def __init__(self, handle: Any) -> None:
        self.prompt = [("human", "Write a long story about a lighthouse keeper and a storm.")]
        self.handle = handle
        self.times: list[float] = []
        self.generated: list[int | None] = []
        handle.chat_model.invoke(self.prompt)  # warm-up

    def __call__(self) -> None:
        t0 = time.perf_counter()
        msg = self.handle.chat_model.invoke(self.prompt)
        self.times.append(time.perf_counter() - t0)
        usage = getattr(msg, "usage_metadata", None) or {}
        self.generated.append(usage.get("output_tokens"))

    def result(self) -> dict[str, Any]:
        return {
            "model": self.handle.name,
            "max_tokens": 64,
            "output_tokens": self.generated,
            "p50_ms": statistics.median(self.times) * 1000,
            "runs": len(self.times),
        }


def fmt_row(name: str, split: str, r: dict[str, Any]) -> str:
    return (
        f"{name:18} {split:8} precision {r['precision']:.3f}  recall {r['recall']:.3f}  "
        f"FPR {r['fpr']:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Guard quality and speed.")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--runs", type=int, default=200, help="Pipeline timing runs.")
    parser.add_argument("--no-model", action="store_true", help="Skip the model timing.")
    parser.add_argument("--errors", action="store_true", help="Print every misclassification.")
    args = parser.parse_args()

    results: dict[str, Any] = {
        "machine": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_1m": os.getloadavg()[0],
    }
    for split in ("train", "heldout"):
        inj = eval_injection(split)
        per_guard = {
            "pii": eval_redaction(split, [PIIGuard()], "pii"),
            "secrets": eval_redaction(split, [SecretsGuard()], "secrets"),
            "pii+secrets": eval_redaction(split, [SecretsGuard(), PIIGuard()], None),
        }
        results[split] = {"prompt_injection": inj, **per_guard}
        print(
            fmt_row("prompt_injection", split, inj),
            f" ({inj['n_attacks']} attacks, {inj['n_benign']} benign; hard-negative FPR "
            f"{inj['hard_negative_fpr']:.3f})",
        )
        for lang, r in inj["by_language"].items():
            print(f"  {lang}: recall {r['recall']:.3f}  FPR {r['fpr']:.3f}")
        for name, r in per_guard.items():
            print(
                fmt_row(name, split, r),
                f" value recall {r['value_recall']:.3f} ({r['n_values']} values), hard "
                f"negatives untouched {r['hard_negatives_untouched']:.3f} "
                f"({r['n_hard_negatives']})",
            )
        if args.errors:
            for line in inj["errors"] + per_guard["pii+secrets"]["errors"]:
                print("   ", line)

    handle = None if args.no_model else load_model(64)
    timer = ModelTimer(handle) if handle is not None else None
    speed = bench_pipeline(args.runs, handle.count_tokens if handle else None, timer)
    results["pipeline"] = speed
    print(
        f"pipeline (default chat input+output) on {speed['chars']} chars: "
        f"p50 {speed['p50_ms']:.2f} ms, p90 {speed['p90_ms']:.2f} ms "
        f"(CPU time p50 {speed['cpu_p50_ms']:.2f} ms)"
    )
    if handle is not None and timer is not None:
        model = timer.result()
        handle.close()
        results["model_64_tokens"] = model
        ratio = speed["p50_ms"] / model["p50_ms"]
        results["pipeline_over_model"] = ratio
        print(
            f"model {model['model']} generating 64 tokens: p50 {model['p50_ms']:.1f} ms "
            f"(output tokens {model['output_tokens']})"
        )
        print(f"pipeline / model = {ratio * 100:.2f}% (target <= 1%)")
    elif not args.no_model:
        print("model: llama_cpp is not installed (pip install 'langdeploy[local]'); not timed")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
