"""Bias probes that need no judge: BBQ-style multiple choice, and counterfactual swaps.

BBQ (Parrish et al., 2022): each probe gives a context, a question and three answers, one of them
"unknown". In the ambiguous version "unknown" is right; the disambiguated version adds the facts.
A *biased* answer picks the stereotyped group for a negative question, or the other group for a
non-negative one. Per category and condition:

    bias = 2 * biased / non_unknown_answers - 1              (in [-1, 1]; 0 is unbiased)
    S_DIS = bias over the disambiguated probes
    S_AMB = (1 - accuracy over the ambiguous probes) * bias over the ambiguous probes

The shipped probes (data/bbq_probes.jsonl) use BBQ's published fields, so BBQ's own files load
too; its category names map onto ours (Gender_identity -> gender, Race_ethnicity -> ethnicity...).

Counterfactual pairs: one prompt with the demographic descriptor swapped. Per group: the refusal
rate, the sentiment (VADER lexicon) and toxicity (a shipped word lexicon) of answers, and how far
each group's answers diverge from the other groups' answers to the same prompt (1 - token F1,
with the descriptor masked so the swap itself does not count as divergence).
"""

from __future__ import annotations

import time
from typing import Any

from langchain_core.runnables import Runnable

from langdeploy.evaluate.bbq import (
    LETTERS,
    MC_SYSTEM,
    Probe,
    ProbeAnswer,
    bbq_scores,
    limit_per_category,
    load_probes,
    parse_choice,
)
from langdeploy.evaluate.bias_data import (
    BBQ_CATEGORY_NAMES,
    CATEGORIES,
    shipped_probes_path,
    shipped_templates_path,
)
from langdeploy.evaluate.cache import ResultCache, cache_key
from langdeploy.evaluate.runner import Candidate, ProgressFn, generate
from langdeploy.evaluate.swaps import (
    Lexicons,
    SwapAnswer,
    Template,
    is_refusal,
    load_templates,
    score_swaps,
    swap_scores,
)

# The probes live in bbq.py and swaps.py (their shared data in bias_data.py); this module runs
# them, and every name stays importable from here.
__all__ = [
    "BBQ_CATEGORY_NAMES",
    "CATEGORIES",
    "LETTERS",
    "MC_SYSTEM",
    "Lexicons",
    "Probe",
    "ProbeAnswer",
    "SwapAnswer",
    "Template",
    "bbq_scores",
    "count_swaps",
    "is_refusal",
    "limit_per_category",
    "limit_templates",
    "load_probes",
    "load_templates",
    "parse_choice",
    "run_bbq",
    "run_swaps",
    "score_swaps",
    "shipped_probes_path",
    "shipped_templates_path",
    "swap_scores",
]


def run_bbq(
    cand: Candidate,
    probes: list[Probe],
    cache: ResultCache,
    *,
    through: str = "chat",
    max_tokens: int = 8,
    progress: ProgressFn | None = None,
) -> list[ProbeAnswer]:
    """Ask every probe through the chain ``through`` (a conversation chain); greedy and short,
    so the answers are stable."""
    # Greedy whatever --temperature says: the probes are meant to be deterministic.
    chain = cand.chain(through, max_tokens=max_tokens, temperature=0.0)
    out = []
    for probe in probes:
        messages = [
            {"type": "system", "content": MC_SYSTEM},
            {"type": "human", "content": probe.prompt()},
        ]
        key = cache_key(
            kind="bbq",
            model=cand.name,
            chain=through,
            identity=cand.identity,
            probe=probe.model_dump(mode="json"),
            params={**cand.params(), "max_tokens": max_tokens, "temperature": 0.0},
        )
        text, cached = _cached_or_run(cache, key, cand, chain, {"messages": messages})
        out.append(ProbeAnswer(probe, text, parse_choice(text, probe), cached))
        if progress is not None:
            progress(f"{cand.name} · bbq {probe.category}")
    return out


def run_swaps(
    cand: Candidate,
    templates: list[Template],
    cache: ResultCache,
    lexicons: Lexicons,
    *,
    through: str = "chat",
    max_tokens: int | None = None,
    progress: ProgressFn | None = None,
) -> list[SwapAnswer]:
    # The run's own answer length, capped: a sentence is enough to read tone and refusals.
    max_tokens = min(max_tokens or cand.settings.model.max_tokens, 32)
    chain = cand.chain(through, max_tokens=max_tokens, temperature=0.0)
    out = []
    for template in templates:
        for group in template.groups:
            prompt = template.render(group)
            key = cache_key(
                kind="swap",
                model=cand.name,
                chain=through,
                identity=cand.identity,
                prompt=prompt,
                params={**cand.params(), "max_tokens": max_tokens, "temperature": 0.0},
            )
            payload = {"messages": [{"type": "human", "content": prompt}]}
            text, cached = _cached_or_run(cache, key, cand, chain, payload)
            out.append(SwapAnswer(template, group, prompt, text, cached))
            if progress is not None:
                progress(f"{cand.name} · swap {template.category}")
    score_swaps(out, lexicons)
    return out


def _cached_or_run(
    cache: ResultCache, key: str, cand: Candidate, chain: Runnable[Any, Any], payload: Any
) -> tuple[str, bool]:
    hit = cache.get(key)
    if hit is not None:
        return str(hit.get("output", "")), True
    text = generate(chain, payload, cand.handle.count_tokens).output
    cache.put(key, {"kind": "bias", "model": cand.name, "output": text, "created": time.time()})
    return text, False


def count_swaps(templates: list[Template]) -> int:
    return sum(len(t.groups) for t in templates)


def limit_templates(templates: list[Template], limit: int) -> list[Template]:
    """At most ``limit`` templates per category (for quick runs)."""
    counts: dict[str, int] = {}
    out = []
    for t in templates:
        if counts.get(t.category, 0) < limit:
            counts[t.category] = counts.get(t.category, 0) + 1
            out.append(t)
    return out
