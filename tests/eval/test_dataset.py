"""Dataset parsing: every bad line is named by its number, with the fix; no row is dropped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from langdeploy.evaluate.dataset import DEFAULT_METRICS, DatasetError, load_dataset, parse_lines

GOOD = json.dumps({"input": "Capital of France?", "expected": "Paris", "tags": ["facts"]})


def test_rows_in_both_forms_load_with_their_metrics() -> None:
    lines = [
        GOOD,
        "",
        json.dumps(
            {
                "id": "chat",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"type": "human", "content": "Hi"},
                ],
                "expected": "hello",
                "metric": "exact",
            }
        ),
        json.dumps({"input": "JSON please", "metric": ["json"]}),
    ]
    examples = parse_lines(lines)
    assert [e.id for e in examples] == ["line-1", "chat", "line-4"]
    assert [e.line for e in examples] == [1, 3, 4]
    assert examples[0].row.metrics == list(DEFAULT_METRICS)
    assert examples[1].row.metrics == ["exact"]
    assert [m.role for m in examples[1].row.messages or []] == ["system", "human"]
    assert examples[2].row.metrics == ["json"]


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        ('{"input": "x", "expected": ', "not valid JSON"),
        ('["input", "x"]', "expected a JSON object"),
        ('{"expected": "x"}', "exactly one of 'input' or 'messages'"),
        ('{"input": "x", "messages": [{"role": "user", "content": "y"}], "expected": "z"}',
         "exactly one of"),
        ('{"input": "x", "expected": "y", "metric": "bleu"}', "unknown metric 'bleu'"),
        ('{"input": "x", "metric": "contains"}', "needs an 'expected'"),
        ('{"input": "x", "metric": "json_schema"}', "needs a 'schema'"),
        ('{"input": "x"}', "no metric applies"),
        ('{"input": "x", "expected": "y", "colour": "red"}', "colour"),
        ('{"messages": [{"role": "robot", "content": "y"}], "expected": "z"}', "robot"),
    ],
)  # fmt: skip
def test_a_malformed_line_is_named_by_number(bad: str, needle: str) -> None:
    with pytest.raises(DatasetError) as info:
        parse_lines([GOOD, GOOD.replace("France", "Spain"), bad])
    message = str(info.value)
    assert "line 3" in message
    assert needle in message
    assert "Each line must be one JSON object" in message  # the fix


def test_duplicate_ids_and_empty_files_are_refused(tmp_path: Path) -> None:
    row = json.dumps({"id": "a", "input": "x", "expected": "y"})
    with pytest.raises(DatasetError, match=r"line 2: id 'a' is already used on line 1"):
        parse_lines([row, row])
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="holds no examples"):
        load_dataset(empty)
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "missing.jsonl")


def test_editing_a_row_changes_its_cache_key_but_tags_do_not() -> None:
    a = parse_lines([GOOD])[0]
    retagged = parse_lines([GOOD.replace('["facts"]', '["geo"]')])[0]
    edited = parse_lines([GOOD.replace("Paris", "paris")])[0]
    assert a.key == retagged.key
    assert a.key != edited.key


def test_the_shipped_example_dataset_loads() -> None:
    path = Path(__file__).resolve().parents[2] / "examples" / "eval" / "support.jsonl"
    examples = load_dataset(path)
    assert len(examples) >= 6
    assert {t for e in examples for t in e.tags} >= {"facts", "math", "support", "extraction"}


def test_a_missing_extra_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from langdeploy.errors import MissingDependencyError
    from langdeploy.evaluate._deps import require

    # None in sys.modules makes the import fail, as if the package were not installed.
    monkeypatch.setitem(sys.modules, "jinja2", None)
    with pytest.raises(MissingDependencyError, match=r"langdeploy\[eval\]"):
        require("jinja2")
