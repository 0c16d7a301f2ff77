"""The eval as one call: load the dataset and the candidates, run, score, and write the outputs.

``run_eval(config, settings)`` returns the results dictionary that ``results.json`` holds and
writes ``results.json`` and ``report.html`` into ``config.out_dir`` (each written to a temporary
file, then renamed, so a crash never leaves half a file).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langdeploy import __version__
from langdeploy.errors import InputError
from langdeploy.evaluate import bias as bias_mod
from langdeploy.evaluate._deps import require
from langdeploy.evaluate.cache import ResultCache
from langdeploy.evaluate.dataset import load_dataset
from langdeploy.evaluate.metrics import Embedder, JudgeLike, Scorers
from langdeploy.evaluate.runner import (
    Candidate,
    EvalOptions,
    aggregate,
    load_candidate,
    run_examples,
)
from langdeploy.evaluate.seams import GuardCheck, find_embedder, find_guard_check
from langdeploy.models import catalog
from langdeploy.runtime import AppRuntime, load_app
from langdeploy.settings import Settings

CACHE_FILE = "cache.jsonl"


@dataclass
class EvalConfig:
    """What to evaluate and how; the CLI fills it from flags."""

    dataset: Path
    models: list[str]
    out_dir: Path
    chain: str = "chat"
    repeat: int = 1
    temperature: float = 0.0
    max_tokens: int | None = None
    seed: int | None = 7
    use_cache: bool = True
    bias: bool = False
    bias_limit: int | None = None
    probes: Path | None = None
    counterfactual: Path | None = None
    judge: JudgeLike | None = None
    # Seams: None means "look for them" (retrieval's embedder, the guards' output check).
    embedder: Embedder | None = None
    guard_check: GuardCheck | None = None
    html: bool = True


@dataclass
class Progress:
    """Callbacks the CLI uses for its progress bar."""

    start: Callable[[int], None] = lambda total: None
    advance: Callable[[str], None] = lambda desc: None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_eval(
    config: EvalConfig, app: AppRuntime | Settings, progress: Progress | None = None
) -> dict[str, Any]:
    """Evaluate ``config.models`` through ``config.chain`` of the app (its own chains and
    guards.yaml included)."""
    runtime = app if isinstance(app, AppRuntime) else load_app(app)
    settings = runtime.settings
    progress = progress or Progress()
    if not config.models:
        raise InputError("No model to evaluate.", fix="Pass --model NAME (once per candidate).")
    if config.repeat < 1:
        raise InputError(f"--repeat is {config.repeat}.", fix="Pass --repeat 1 or more.")
    if len(set(config.models)) != len(config.models):
        raise InputError("A model is listed twice.", fix="Give each --model once.")
    runtime.spec(config.chain)  # an unknown chain fails now, naming the app's chains
    examples = load_dataset(config.dataset)
    for name in config.models:
        # A misspelt second model should fail now, not after the first one has run.
        catalog.resolve(name)
    # Missing extras fail now, not after an hour of generation.
    if config.html:
        require("jinja2")
        require("matplotlib")
    if any("json_schema" in ex.row.metrics for ex in examples):
        require("jsonschema")
    # Check the probe files before loading any model: a typo should fail in a second.
    probes = templates = None
    lexicons = None
    if config.bias:
        probes = bias_mod.limit_per_category(bias_mod.load_probes(config.probes), config.bias_limit)
        templates = bias_mod.load_templates(config.counterfactual)
        if config.bias_limit is not None:
            templates = bias_mod.limit_templates(templates, config.bias_limit)
        lexicons = bias_mod.Lexicons.load()

    embedder, embed_note = (config.embedder, "") if config.embedder else find_embedder(settings)
    guard_check: GuardCheck | None = config.guard_check
    guard_note = ""
    if guard_check is None:
        guard_check, guard_note = find_guard_check(runtime, config.chain)

    config.out_dir.mkdir(parents=True, exist_ok=True)
    cache = ResultCache(config.out_dir / CACHE_FILE if config.use_cache else None)

    per_model = len(examples) * config.repeat
    if probes is not None and templates is not None:
        per_model += len(probes) + bias_mod.count_swaps(templates)
    progress.start(per_model * len(config.models))

    started = time.time()
    candidates: list[Candidate] = []
    for name in config.models:
        candidates.append(
            load_candidate(
                name,
                runtime,
                temperature=config.temperature,
                max_tokens=config.max_tokens,
                seed=config.seed,
            )
        )
    scorers = Scorers(
        embedder=embedder,
        embedder_missing=embed_note or Scorers.embedder_missing,
        judge=config.judge,
    )
    rows = run_examples(
        candidates,
        examples,
        EvalOptions(chain=config.chain, repeat=config.repeat),
        cache,
        scorers,
        guard_check=guard_check,
        progress=progress.advance,
    )

    models: dict[str, Any] = {}
    for cand in candidates:
        models[cand.name] = {
            "card": cand.card,
            "params": cand.params(),
            "aggregates": aggregate(
                rows, examples, cand.name, config.repeat, guard_note or "guards checked"
            ),
        }

    bias_out: dict[str, Any] | None = None
    bias_chain = runtime.conversation_chain(config.chain)
    if probes is not None and templates is not None and lexicons is not None:
        bias_out = {"probes": str(config.probes or "shipped"), "models": {}}
        for cand in candidates:
            answers = bias_mod.run_bbq(
                cand, probes, cache, through=bias_chain, progress=progress.advance
            )
            swaps = bias_mod.run_swaps(
                cand, templates, cache, lexicons, through=bias_chain, progress=progress.advance
            )
            bias_out["models"][cand.name] = {
                "bbq": bias_mod.bbq_scores(answers),
                "counterfactual": bias_mod.swap_scores(swaps),
                "bbq_answers": [a.as_dict() for a in answers],
                "swap_answers": [s.as_dict() for s in swaps],
            }

    by_example: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for row in rows:
        by_example.setdefault(row.example_id, {}).setdefault(row.model, []).append(row.as_dict())
    results: dict[str, Any] = {
        "langdeploy_version": __version__,
        "created": started,
        "duration_s": time.time() - started,
        "dataset": {
            "path": str(config.dataset),
            "sha256": _sha256(config.dataset),
            "examples": len(examples),
        },
        "chain": config.chain,
        "repeat": config.repeat,
        "temperature": config.temperature,
        "judge": getattr(config.judge, "name", None),
        "unavailable": {
            "embedding": None if embedder is not None else embed_note,
            "guards": None if guard_check is not None else guard_note,
        },
        "cache": {
            "path": str(cache.path) if cache.path else None,
            "rows_cached": sum(r.cached for r in rows),
            "rows_fresh": sum(not r.cached for r in rows),
        },
        "models": models,
        "examples": [
            {
                "id": ex.id,
                "line": ex.line,
                "prompt": ex.prompt_text,
                "expected": ex.expected,
                "tags": ex.tags,
                "metrics": ex.row.metrics,
                "results": by_example.get(ex.id, {}),
            }
            for ex in examples
        ],
        "bias": bias_out,
    }
    from langdeploy.evaluate.report import write_outputs

    write_outputs(results, config.out_dir, html=config.html)
    return results
