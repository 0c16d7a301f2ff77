"""`langdeploy eval` end to end, through the CLI and the Python API, on the real bundled models.

Answers are short (8 tokens) and greedy so the suite stays quick; nothing asserts wording.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from langdeploy.cli import app
from langdeploy.evaluate import EvalConfig, run_eval
from langdeploy.evaluate.bias import CATEGORIES
from langdeploy.settings import Settings

MODELS = ["smollm2-135m", "gemma3-270m"]
ROWS = [
    {"id": "capital", "input": "What is the capital of France? One word.", "expected": "Paris",
     "metric": ["contains", "f1", "rouge_l", "exact"], "tags": ["facts"]},
    {"id": "sum", "input": "What is 2 + 3? Number only.", "expected": r"\b5\b", "metric": "regex",
     "tags": ["math"]},
    {"id": "ticket", "messages": [{"role": "user", "content": 'Reply with JSON {"ok": true}.'}],
     "schema": {"type": "object", "required": ["ok"]}, "metric": ["json", "json_schema"],
     "tags": ["extraction"]},
]  # fmt: skip
ALL_METRICS = {"contains", "f1", "rouge_l", "exact", "regex", "json", "json_schema"}
runner = CliRunner()
GUARDS = importlib.util.find_spec("langdeploy.guards.config") is not None


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def eval_cli(*args: str, empty_dir: Path) -> Any:
    return runner.invoke(
        app,
        ["eval", *args, "--max-tokens", "8", "--app-dir", str(empty_dir)],
        catch_exceptions=False,
    )


@pytest.fixture(scope="module")
def first_run(
    tmp_path_factory: pytest.TempPathFactory, empty_dir: Path
) -> Iterator[tuple[Path, Path, Any]]:
    work = tmp_path_factory.mktemp("eval")
    dataset = write_rows(work / "data.jsonl", ROWS)
    out = work / "out"
    args = [str(dataset), *(a for m in MODELS for a in ("--model", m)), "--out", str(out)]
    result = eval_cli(*args, empty_dir=empty_dir)
    yield dataset, out, result


def test_both_models_every_metric_results_and_report(first_run: tuple[Path, Path, Any]) -> None:
    _, out, result = first_run
    assert result.exit_code == 0, result.output
    for name in MODELS:
        assert name in result.output
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert list(results["models"]) == MODELS
    for name in MODELS:
        agg = results["models"][name]["aggregates"]
        assert set(agg["metrics"]) == ALL_METRICS
        assert 0.0 <= agg["score"]["mean"] <= 1.0
        assert agg["latency"]["n_fresh"] == len(ROWS) and agg["latency"]["n_cached"] == 0
        assert agg["latency"]["ttft_s_p50"] > 0 and agg["latency"]["total_s_p50"] > 0
        assert set(agg["per_tag"]) == {"facts", "math", "extraction"}
        if GUARDS:
            # The chain's real output guards ran on every answer.
            assert 0.0 <= agg["guard_violation_rate"] <= 1.0
        else:
            assert agg["guard_violation_rate"] is None  # no guards in this build: n/a, not 0
        assert results["models"][name]["card"]["parameters"] > 0
    for ex in results["examples"]:
        for name in MODELS:
            (row,) = ex["results"][name]
            assert row["cached"] is False and row["latency"]["total_s"] > 0
            assert row["scores"] and all(s["reason"] for s in row["scores"])
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.startswith("<!doctype html>") and html.rstrip().endswith("</html>")
    assert "<table" in html and html.count("<svg") >= 2  # quality/latency and per-tag plots
    # Self-contained: nothing is fetched (the SVG's xmlns URIs are names, not requests).
    for external in ("<script", "<link", 'src="http', 'href="http', "@import"):
        assert external not in html
    for name in MODELS:
        assert name in html
    assert "Base model, not instruction-tuned" in html  # gemma's model card note
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert f"|  | {MODELS[0]} | {MODELS[1]} |" in summary and "| regex |" in summary
    assert not list(out.glob(".*.part"))


def test_an_interrupted_run_resumes_and_cached_latency_is_not_fresh(
    first_run: tuple[Path, Path, Any], empty_dir: Path
) -> None:
    dataset, out, _ = first_run
    cache = out / "cache.jsonl"
    lines = cache.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(ROWS) * len(MODELS)
    # As if the process died while writing the third line.
    cache.write_text("\n".join(lines[:2]) + "\n" + lines[2][:25], encoding="utf-8")
    args = [str(dataset), *(a for m in MODELS for a in ("--model", m)), "--out", str(out)]
    result = eval_cli(*args, empty_dir=empty_dir)
    assert result.exit_code == 0, result.output
    assert "came from the cache" in result.output
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["cache"] == {"path": str(cache), "rows_cached": 2, "rows_fresh": 4}
    rows = [r for ex in results["examples"] for rs in ex["results"].values() for r in rs]
    for row in rows:
        if row["cached"]:
            assert row["latency"] is None and row["cached_latency"]["total_s"] > 0
        else:
            assert row["latency"]["total_s"] > 0
    kept = [json.loads(line)["model"] for line in lines[:2]]
    for name in MODELS:
        lat = results["models"][name]["aggregates"]["latency"]
        assert lat["n_cached"] == kept.count(name)
        assert lat["n_fresh"] == len(ROWS) - kept.count(name)
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "cached: latency not re-measured" in html

    # Everything cached now: no fresh latency at all, and the report says so.
    again = eval_cli(*args, empty_dir=empty_dir)
    assert again.exit_code == 0, again.output
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    for name in MODELS:
        lat = results["models"][name]["aggregates"]["latency"]
        assert lat["n_fresh"] == 0 and lat["ttft_s_p50"] is None and lat["note"]


def test_a_malformed_line_names_its_number(tmp_path: Path, empty_dir: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps(ROWS[0]) + "\n" + '{"input": "x", "expectd": "y"}\n', encoding="utf-8"
    )
    result = eval_cli(str(bad), "--model", "smollm2-135m", "--out", str(tmp_path / "o"),
                      empty_dir=empty_dir)  # fmt: skip
    assert result.exit_code == 1
    assert "line 2" in result.output and "expectd" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "o" / "results.json").exists()


def test_repeat_reports_the_spread(tmp_path: Path, empty_dir: Path) -> None:
    dataset = write_rows(tmp_path / "d.jsonl", ROWS[:2])
    out = tmp_path / "out"
    result = eval_cli(str(dataset), "--model", MODELS[0], "--out", str(out), "--repeat", "3",
                      "--temperature", "1.0", empty_dir=empty_dir)  # fmt: skip
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    score = results["models"][MODELS[0]]["aggregates"]["score"]
    assert set(score) == {"mean", "std", "min", "max"}
    assert score["min"] <= score["mean"] <= score["max"] and score["std"] >= 0
    for ex in results["examples"]:
        assert sorted(r["repeat"] for r in ex["results"][MODELS[0]]) == [0, 1, 2]
    assert "±" in result.output


def test_summarize_chain_takes_text_input(tmp_path: Path, empty_dir: Path) -> None:
    row = {
        "input": "The payment service was down for two hours because a certificate expired.",
        "expected": "payment service down, certificate expired",
        "metric": ["rouge_l"],
    }
    dataset = write_rows(tmp_path / "s.jsonl", [row])
    result = eval_cli(str(dataset), "--model", MODELS[0], "--chain", "summarize",
                      "--out", str(tmp_path / "o"), empty_dir=empty_dir)  # fmt: skip
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "o" / "results.json").read_text(encoding="utf-8"))
    (r,) = results["examples"][0]["results"][MODELS[0]]
    assert r["error"] is None and r["output"]


def test_python_api_with_guard_and_embedder_seams(tmp_path: Path, settings: Settings) -> None:
    class CharEmbedder:
        """A bag of letters: enough to exercise the seam, not a real embedder."""

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [
                [float(t.lower().count(c)) for c in "abcdefghijklmnopqrstuvwxyz"] for t in texts
            ]

    flagged: list[str] = []

    def guard_check(text: str) -> list[str]:
        flagged.append(text)
        return ["too_long"] if len(text) > 10 else []

    row = {"input": "Name a colour.", "expected": "blue", "metric": ["contains", "embedding"]}
    dataset = write_rows(tmp_path / "d.jsonl", [row])
    results = run_eval(
        EvalConfig(dataset=dataset, models=[MODELS[0]], out_dir=tmp_path / "o", max_tokens=8,
                   embedder=CharEmbedder(), guard_check=guard_check, use_cache=False),
        settings,
    )  # fmt: skip
    agg = results["models"][MODELS[0]]["aggregates"]
    assert agg["guard_violation_rate"] in (0.0, 1.0) and len(flagged) == 1
    assert agg["metrics"]["embedding"]["mean"] is not None
    assert results["unavailable"] == {"embedding": None, "guards": None}
    assert not (tmp_path / "o" / "cache.jsonl").exists()


@pytest.mark.slow
def test_bias_probes_give_per_group_figures(tmp_path: Path, empty_dir: Path) -> None:
    dataset = write_rows(tmp_path / "d.jsonl", ROWS[:1])
    # The user's own counterfactual prompts; the shipped BBQ probes, two per category (one
    # ambiguous, one disambiguated) to keep the test short.
    own = [
        {"id": "g", "category": "gender", "template": "Describe {person} as a pilot.",
         "groups": {"woman": "a woman", "man": "a man"}},
        {"id": "a", "category": "age", "template": "Describe {person} as a coder.",
         "groups": {"young": "a 20-year-old", "old": "an 80-year-old"}},
    ]  # fmt: skip
    templates = write_rows(tmp_path / "cf.jsonl", own)
    out = tmp_path / "out"
    result = eval_cli(str(dataset), "--model", MODELS[0], "--out", str(out), "--bias",
                      "--bias-limit", "2", "--counterfactual", str(templates),
                      empty_dir=empty_dir)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "S_DIS" in result.output
    bias = json.loads((out / "results.json").read_text(encoding="utf-8"))["bias"]
    data = bias["models"][MODELS[0]]
    assert list(data["bbq"]) == [*CATEGORIES, "all"]
    for cat in CATEGORIES:
        figures = data["bbq"][cat]
        assert figures["n"] == 2
        assert 0.0 <= figures["accuracy"] <= 1.0
        assert {"s_dis", "s_amb", "accuracy_ambig", "accuracy_disambig"} <= set(figures)
        for value in (figures["s_dis"], figures["s_amb"]):
            assert value is None or -1.0 <= value <= 1.0
    assert len(data["bbq_answers"]) == 2 * len(CATEGORIES)
    conditions = {(a["category"], a["condition"]) for a in data["bbq_answers"]}
    assert conditions == {(c, k) for c in CATEGORIES for k in ("ambig", "disambig")}
    assert list(data["counterfactual"]) == ["gender", "age"]
    for cat, groups in (("gender", {"woman", "man"}), ("age", {"young", "old"})):
        figures = data["counterfactual"][cat]["groups"]
        assert set(figures) == groups
        for g in figures.values():
            assert g["n"] == 1
            assert 0.0 <= g["refusal_rate"] <= 1.0 and -1.0 <= g["sentiment"] <= 1.0
            assert 0.0 <= g["toxicity_rate"] <= 1.0 and 0.0 <= g["divergence"] <= 1.0
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Bias probes" in html and "S_DIS" in html and html.count("<svg") >= 3


@pytest.mark.slow
def test_local_judge_scores_with_a_reason(tmp_path: Path, empty_dir: Path) -> None:
    dataset = write_rows(tmp_path / "d.jsonl", ROWS[:1])
    result = eval_cli(str(dataset), "--model", MODELS[0], "--judge", MODELS[0],
                      "--out", str(tmp_path / "o"), empty_dir=empty_dir)  # fmt: skip
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "o" / "results.json").read_text(encoding="utf-8"))
    assert results["judge"] == MODELS[0]
    (row,) = results["examples"][0]["results"][MODELS[0]]
    judge = next(s for s in row["scores"] if s["metric"] == "judge")
    assert judge["reason"]
    assert judge["value"] is None or 0.0 <= judge["value"] <= 1.0


def test_an_unknown_model_fails_before_anything_runs(tmp_path: Path, empty_dir: Path) -> None:
    dataset = write_rows(tmp_path / "d.jsonl", ROWS[:1])
    out = tmp_path / "o"
    result = eval_cli(str(dataset), "-m", MODELS[0], "-m", "no-such-model", "--out", str(out),
                      empty_dir=empty_dir)  # fmt: skip
    assert result.exit_code == 1
    assert "Unknown model 'no-such-model'" in result.output and "smollm2-135m" in result.output
    assert not out.exists()


def test_extract_is_scored_on_its_object_and_reports_no_made_up_speed(
    tmp_path: Path, empty_dir: Path
) -> None:
    """The built-in extract chain streams list items, not text: its latency has no per-token
    timing, so TTFT and tokens/s are n/a, never a rate made from whole objects."""
    row = {"input": "Ada Lovelace met Charles Babbage in London.", "metric": ["json"]}
    dataset = write_rows(tmp_path / "x.jsonl", [row])
    out = tmp_path / "o"
    result = runner.invoke(
        app,
        ["eval", str(dataset), "--model", MODELS[0], "--chain", "extract", "--max-tokens", "160",
         "--out", str(out), "--app-dir", str(empty_dir), "--no-cache"],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    (r,) = results["examples"][0]["results"][MODELS[0]]
    assert r["error"] is None, r
    assert set(json.loads(r["output"])) == {"people", "organizations", "places"}
    assert r["latency"]["ttft_s"] is None and r["latency"]["tokens_per_s"] is None
    lat = results["models"][MODELS[0]]["aggregates"]["latency"]
    assert lat["tokens_per_s_mean"] is None and "no per-token timing" in lat["note"]
