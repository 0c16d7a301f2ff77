"""Bias scoring without a model: the shipped probes are well formed, and BBQ's formulas hold."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from langdeploy.evaluate.bias import (
    CATEGORIES,
    Lexicons,
    Probe,
    ProbeAnswer,
    SwapAnswer,
    bbq_scores,
    is_refusal,
    load_probes,
    load_templates,
    parse_choice,
    score_swaps,
    swap_scores,
)
from langdeploy.evaluate.dataset import DatasetError


@pytest.fixture(scope="module")
def probes() -> list[Probe]:
    return load_probes()


def test_shipped_probes_cover_every_category_in_every_version(probes: list[Probe]) -> None:
    versions = Counter((p.category, p.context_condition, p.question_polarity) for p in probes)
    for cat in CATEGORIES:
        for cond in ("ambig", "disambig"):
            for pol in ("neg", "nonneg"):
                assert versions[(cat, cond, pol)] >= 2, (cat, cond, pol)
    for p in probes:
        # Ambiguous: only "unknown" is right. Disambiguated: one of the two people is.
        if p.context_condition == "ambig":
            assert p.label == p.unknown_index
        else:
            assert p.label != p.unknown_index
        assert sum(p.is_target(i) for i in range(3)) == 1


def _answers(probes: list[Probe], pick: str) -> list[ProbeAnswer]:
    out = []
    for p in probes:
        if pick == "stereotype":
            # The answer a biased model gives: the target for negative questions, else the other.
            idx = next(i for i in range(3) if i != p.unknown_index and p.is_biased(i))
        elif pick == "unknown":
            idx = p.unknown_index
        else:
            idx = p.label
        out.append(ProbeAnswer(p, "", idx))
    return out


def test_bbq_scores_follow_the_published_formulas(probes: list[Probe]) -> None:
    biased = bbq_scores(_answers(probes, "stereotype"))
    for cat in CATEGORIES:
        assert biased[cat]["s_dis"] == pytest.approx(1.0)
        assert biased[cat]["accuracy_ambig"] == 0.0
        assert biased[cat]["s_amb"] == pytest.approx(1.0)  # (1 - 0) * 1
        # Half the disambiguated probes have facts that go with the stereotype.
        assert biased[cat]["accuracy_disambig"] == pytest.approx(0.5)
    perfect = bbq_scores(_answers(probes, "label"))
    assert perfect["all"]["accuracy"] == 1.0
    assert perfect["all"]["s_dis"] == pytest.approx(0.0)  # right answers are half each way
    # Right ambiguous answers are all "unknown": no non-unknown answer, so no S_AMB.
    assert perfect["all"]["s_amb"] is None
    unknown = bbq_scores(_answers(probes, "unknown"))
    assert unknown["all"]["accuracy_ambig"] == 1.0
    assert unknown["all"]["s_dis"] is None  # no non-unknown answer to score
    assert unknown["all"]["unknown_rate"] == 1.0


def test_mixed_answers_give_the_formula_value(probes: list[Probe]) -> None:
    amb = [p for p in probes if p.category == "gender" and p.context_condition == "ambig"][:4]
    # 3 biased and 1 counter-biased answer out of 4 non-unknown: bias 2*3/4-1 = 0.5, accuracy 0.
    picks = []
    for k, p in enumerate(amb):
        choices = [i for i in range(3) if i != p.unknown_index]
        biased = next(i for i in choices if p.is_biased(i))
        other = next(i for i in choices if not p.is_biased(i))
        picks.append(ProbeAnswer(p, "", biased if k < 3 else other))
    scores = bbq_scores(picks)["gender"]
    assert scores["s_amb"] == pytest.approx(0.5)


def test_parse_choice(probes: list[Probe]) -> None:
    p = probes[0]
    assert parse_choice("B", p) == 1
    assert parse_choice("(C) because", p) == 2
    assert parse_choice("The answer is A.", p) == 0
    assert parse_choice(p.answers[2], p) == 2
    assert parse_choice("It cannot be determined from this.", p) == p.unknown_index
    # "A woman ..." starts with a letter but names two people: no choice, not option A.
    assert parse_choice("A woman and a man walk in", p) is None
    assert parse_choice("I like trains", p) is None


def test_a_bad_probe_line_is_named(tmp_path: Path, probes: list[Probe]) -> None:
    good = probes[0].model_dump_json()
    bad = json.loads(good)
    del bad["additional_metadata"]["stereotyped_groups"]
    path = tmp_path / "probes.jsonl"
    path.write_text(good + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="line 2"):
        load_probes(path)


def test_bbq_category_names_map_onto_ours(probes: list[Probe]) -> None:
    data = json.loads(probes[0].model_dump_json())
    data["category"] = "Gender_identity"
    assert Probe.model_validate(data).category == "gender"


def test_counterfactual_scores_per_group(tmp_path: Path) -> None:
    templates = load_templates()
    assert {t.category for t in templates} == set(CATEGORIES)
    t = templates[0]
    groups = list(t.groups)
    outputs = {
        groups[0]: "They are a kind and brilliant nurse.",
        groups[1]: "I'm sorry, I can't help with that.",
        groups[2]: "They are lazy and stupid.",
    }
    answers = [SwapAnswer(t, g, t.render(g), outputs[g]) for g in groups]
    score_swaps(answers, Lexicons.load())
    figures = swap_scores(answers)[t.category]
    g = figures["groups"]
    assert g[groups[0]]["sentiment"] > 0 > g[groups[2]]["sentiment"]
    assert g[groups[1]]["refusal_rate"] == 1.0 and g[groups[0]]["refusal_rate"] == 0.0
    assert g[groups[2]]["toxicity_rate"] == 1.0 and g[groups[0]]["toxicity_rate"] == 0.0
    assert all(0.0 <= v["divergence"] <= 1.0 for v in g.values())
    assert figures["sentiment_gap"] > 0.5 and figures["refusal_gap"] == 1.0
    assert is_refusal("As an AI, I cannot answer") and not is_refusal("Sure, here it is")


def test_swaps_with_the_descriptor_masked_do_not_diverge() -> None:
    t = load_templates()[0]
    a, b = list(t.groups)[:2]
    same = [
        SwapAnswer(t, g, t.render(g), f"{t.groups[g]} would be a caring nurse.") for g in (a, b)
    ]
    score_swaps(same, Lexicons.load())
    assert all(s.divergence == pytest.approx(0.0) for s in same)
