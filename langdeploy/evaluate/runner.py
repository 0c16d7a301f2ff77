"""Run candidate models through one chain over a dataset, time every answer, score it, aggregate.

Each candidate is a catalog name or a .gguf path, built once with ``build_model(..., shared=True)``
and driven through the chain the app would serve (``AppRuntime.build_chain``), so the eval measures what
production runs. Latency comes from streaming (generation.py): time to first token, total time,
and decode speed, or None where the chain's stream gives no per-token timing. An empty answer is
an error row, counted with the other errors.
Generations are cached per (model, example, repeat, params); a cached row is marked ``cached`` and
its latency is kept apart, never reported as a fresh measurement.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import HumanMessage
from langchain_core.runnables import Runnable

from langdeploy.chains.registry import ChainContext
from langdeploy.errors import InputError, LangdeployError
from langdeploy.evaluate.cache import ResultCache, cache_key
from langdeploy.evaluate.dataset import Example
from langdeploy.evaluate.generation import chain_input, generate
from langdeploy.evaluate.metrics import Score, Scorers, example_score, score_example
from langdeploy.evaluate.seams import GuardCheck
from langdeploy.models import catalog
from langdeploy.models.factory import ModelHandle, build_model
from langdeploy.runtime import AppRuntime
from langdeploy.settings import Settings

ProgressFn = Callable[[str], None]
EMPTY_ANSWER = "EmptyAnswer: the chain answered with no text"


@dataclass
class Candidate:
    """One model under evaluation, loaded once."""

    name: str
    handle: ModelHandle
    settings: Settings
    app: AppRuntime
    card: dict[str, Any]
    identity: str
    warmed: bool = False

    def warm_up(self) -> None:
        """One untimed token before the first timed answer: the first call pays for paging the
        weights in and allocating buffers, which is not the latency a user sees later."""
        if self.warmed:
            return
        self.warmed = True
        try:
            self.handle.chat_model.invoke([HumanMessage(content="Hi")], max_tokens=1)
        except Exception:
            # A model that cannot answer shows its error on the first real example instead.
            return

    def chain(self, chain_name: str, **overrides: Any) -> Runnable[Any, Any]:
        """The named chain over this model; ``overrides`` (seed, max_tokens, temperature) go
        through the model's configurable sampling fields, so the engine (weights, context)
        stays shared."""
        chat_model = self.handle.chat_model
        known = {spec.id for spec in chat_model.config_specs}
        update = {k: v for k, v in overrides.items() if k in known and v is not None}
        if update:
            chat_model = chat_model.with_config(configurable=update)
        ctx = ChainContext(
            settings=self.settings,
            model=chat_model,
            count_tokens=self.handle.count_tokens,
            n_ctx=self.handle.n_ctx,
        )
        # The app's chain as the app builds it (its retrieval guards included).
        return self.app.build_chain(chain_name, ctx)

    def params(self) -> dict[str, Any]:
        m = self.settings.model
        return {
            "temperature": m.temperature,
            "top_k": m.top_k,
            "top_p": m.top_p,
            "repeat_penalty": m.repeat_penalty,
            "max_tokens": m.max_tokens,
            "seed": m.seed,
            "n_ctx": m.n_ctx,
            "chat_format": m.chat_format,
            "system_prompt": m.system_prompt,
        }


def load_candidate(
    name: str,
    app: AppRuntime,
    *,
    temperature: float,
    max_tokens: int | None = None,
    seed: int | None = None,
) -> Candidate:
    """Build and load one candidate; its settings are the app's with the model swapped in."""
    settings = app.settings
    update: dict[str, Any] = {"name": name, "temperature": temperature}
    if max_tokens is not None:
        update["max_tokens"] = max_tokens
    if seed is not None:
        update["seed"] = seed
    model_settings = settings.model.model_copy(update=update)
    handle = build_model(model_settings, shared=True)
    handle.load()
    try:
        card = catalog.model_card(name).as_dict()
    except LangdeployError as exc:
        card = {"name": name, "error": str(exc)}
    path = card.get("path", name)
    identity = f"{path}:{card.get('file_size', '')}"
    return Candidate(
        name=name,
        handle=handle,
        settings=settings.model_copy(update={"model": model_settings}),
        app=app,
        card=card,
        identity=identity,
    )


# -- the run -----------------------------------------------------------------------------------


@dataclass
class RowResult:
    model: str
    example_id: str
    repeat: int
    output: str
    error: str | None
    cached: bool
    latency: dict[str, Any] | None
    cached_latency: dict[str, Any] | None
    scores: list[Score] = field(default_factory=list)
    score: float | None = None
    guard_violations: list[str] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "example_id": self.example_id,
            "repeat": self.repeat,
            "output": self.output,
            "error": self.error,
            "cached": self.cached,
            "latency": self.latency,
            "cached_latency": self.cached_latency,
            "score": self.score,
            "scores": [s.as_dict() for s in self.scores],
            "guard_violations": self.guard_violations,
        }


@dataclass
class EvalOptions:
    chain: str = "chat"
    repeat: int = 1


def run_examples(
    candidates: list[Candidate],
    examples: list[Example],
    options: EvalOptions,
    cache: ResultCache,
    scorers: Scorers,
    guard_check: GuardCheck | None = None,
    progress: ProgressFn | None = None,
) -> list[RowResult]:
    """Every (model, example, repeat): from the cache when it is there, else generated now."""
    results: list[RowResult] = []
    chains: dict[tuple[str, int], Runnable[Any, Any]] = {}
    for cand in candidates:
        base_seed = cand.settings.model.seed
        for r in range(options.repeat):
            seed = base_seed + r if base_seed >= 0 else None
            chains[(cand.name, r)] = cand.chain(options.chain, seed=seed)
    # Models take turns on each example, so a burst of load on a shared machine slows every
    # candidate alike instead of skewing the latency of whichever model ran at the time.
    for r in range(options.repeat):
        for ex in examples:
            for cand in candidates:
                key = cache_key(
                    kind="example",
                    model=cand.name,
                    identity=cand.identity,
                    example=ex.key,
                    repeat=r,
                    chain=options.chain,
                    params=cand.params(),
                )
                chain = chains[(cand.name, r)]
                results.append(_one(cand, chain, ex, r, key, options, cache))
                if progress is not None:
                    progress(f"{cand.name} · {ex.id}")
    by_id = {e.id: e for e in examples}
    for row in results:
        ex = by_id[row.example_id]
        if row.error is None:
            row.scores = score_example(ex, row.output, scorers)
            row.score = example_score(row.scores)
            if guard_check is not None:
                row.guard_violations = list(guard_check(row.output))
        else:
            row.scores = [Score("error", 0.0, f"generation failed: {row.error}")]
            row.score = 0.0
    return results


def _one(
    cand: Candidate,
    chain: Runnable[Any, Any],
    ex: Example,
    repeat: int,
    key: str,
    options: EvalOptions,
    cache: ResultCache,
) -> RowResult:
    hit = cache.get(key)
    if hit is not None:
        cached_output = str(hit.get("output", ""))
        return RowResult(
            model=cand.name,
            example_id=ex.id,
            repeat=repeat,
            output=cached_output,
            # A row cached before empty answers were errors is one too.
            error=hit.get("error") or (None if cached_output.strip() else EMPTY_ANSWER),
            cached=True,
            latency=None,
            cached_latency=hit.get("latency"),
        )
    cand.warm_up()
    try:
        payload = chain_input(ex, chain, options.chain)
        gen = generate(chain, payload, cand.handle.count_tokens)
        output, error = gen.output, None
        latency: dict[str, Any] | None = gen.latency()
        if not output.strip():
            # An empty answer is a failure to answer, not a low score among the others.
            output, error, latency = "", EMPTY_ANSWER, None
    except InputError:
        raise
    except Exception as exc:
        # One failing generation (a context overflow, a model error) is a result, not the end
        # of a long run; it is scored 0 and shown with its error.
        output, error, latency = "", f"{type(exc).__name__}: {exc}", None
    cache.put(
        key,
        {
            "kind": "example",
            "model": cand.name,
            "example_id": ex.id,
            "repeat": repeat,
            "output": output,
            "error": error,
            "latency": latency,
            "created": time.time(),
        },
    )
    return RowResult(cand.name, ex.id, repeat, output, error, False, latency, None)


# -- aggregates --------------------------------------------------------------------------------


def _mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _spread(per_repeat: list[float]) -> dict[str, float | None]:
    if not per_repeat:
        return {"mean": None, "std": None, "min": None, "max": None}
    return {
        "mean": sum(per_repeat) / len(per_repeat),
        "std": statistics.pstdev(per_repeat) if len(per_repeat) > 1 else 0.0,
        "min": min(per_repeat),
        "max": max(per_repeat),
    }


def _latency_note(fresh: list[dict[str, Any]], ttft: list[float]) -> str | None:
    if not fresh:
        return "no fresh measurement: every row came from the cache"
    if not ttft:
        return "no per-token timing: the chain sent each answer in one event"
    return None


def aggregate(
    rows: list[RowResult],
    examples: list[Example],
    model: str,
    repeat: int,
    guard_note: str,
) -> dict[str, Any]:
    """Per-model figures: quality with its spread over repeats, latency (fresh rows only),
    guard violation rate, errors and a score per tag."""
    mine = [r for r in rows if r.model == model]
    metric_names = sorted({s.metric for r in mine for s in r.scores})
    metrics: dict[str, Any] = {}
    for name in metric_names:
        per_repeat = []
        for rep in range(repeat):
            vals = [
                s.value
                for r in mine
                if r.repeat == rep
                for s in r.scores
                if s.metric == name and s.value is not None
            ]
            if vals:
                per_repeat.append(sum(vals) / len(vals))
        n_missing = sum(1 for r in mine for s in r.scores if s.metric == name and s.value is None)
        metrics[name] = {**_spread(per_repeat), "n_unavailable": n_missing}
    score_per_repeat = [
        m
        for rep in range(repeat)
        if (m := _mean(r.score for r in mine if r.repeat == rep)) is not None
    ]
    # How much single examples flip between repeats: the noisy ones.
    example_std = []
    for ex in examples:
        vals = [r.score for r in mine if r.example_id == ex.id and r.score is not None]
        if len(vals) > 1:
            example_std.append(statistics.pstdev(vals))
    fresh = [r.latency for r in mine if r.latency is not None]
    ttft = [lat["ttft_s"] for lat in fresh if lat.get("ttft_s") is not None]
    total = [lat["total_s"] for lat in fresh if lat.get("total_s") is not None]
    rate = [lat["tokens_per_s"] for lat in fresh if lat.get("tokens_per_s") is not None]
    checked = [r for r in mine if r.guard_violations is not None]
    tags: dict[str, list[float]] = {}
    by_id = {e.id: e for e in examples}
    for r in mine:
        for tag in by_id[r.example_id].tags or ["(untagged)"]:
            tags.setdefault(tag, []).append(r.score if r.score is not None else 0.0)
    return {
        "score": _spread(score_per_repeat),
        "example_score_std_mean": _mean(example_std) if example_std else 0.0,
        "metrics": metrics,
        "latency": {
            "n_fresh": len(fresh),
            "n_cached": sum(1 for r in mine if r.cached),
            "ttft_s_p50": _median(ttft),
            "ttft_s_mean": _mean(ttft),
            "total_s_p50": _median(total),
            "total_s_mean": _mean(total),
            "tokens_per_s_mean": _mean(rate),
            "note": _latency_note(fresh, ttft),
        },
        "guard_violation_rate": (
            sum(1 for r in checked if r.guard_violations) / len(checked) if checked else None
        ),
        "guard_note": guard_note,
        "errors": sum(1 for r in mine if r.error),
        "per_tag": {tag: sum(v) / len(v) for tag, v in sorted(tags.items())},
        "n_rows": len(mine),
    }
