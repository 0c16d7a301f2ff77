"""Model-card rows in the eval report (and everywhere a card is shown): labels and units."""

from __future__ import annotations

from typing import Any

from langdeploy.evaluate.report import card_table
from langdeploy.models.card_view import card_rows

CARD: dict[str, Any] = {
    "name": "tiny",
    "path": "/srv/models/tiny.gguf",
    "source": "local file /srv/models/tiny.gguf",
    "description": "A tiny test model.",
    "architecture": "llama",
    "parameters": 134_515_008,
    "parameters_human": "135M",
    "quantization": "Q4_1",
    "context_length": 8192,
    "license": None,
    "chat_template": True,
    "chat_format": None,
    "instruct": False,
    "file_size": 98_362_432,
    "notes": [],
}


def test_card_rows_have_labels_and_units() -> None:
    rows = dict(card_rows(CARD))
    assert rows["parameters"] == "135M (134,515,008)"
    assert rows["file size"] == "93.8 MiB"
    assert rows["context length"] == "8,192 tokens"
    assert rows["licence"] == "? (not in the GGUF metadata)"
    assert rows["instruction-tuned"] == "no: a base model"
    assert rows["path"] == "/srv/models/tiny.gguf"
    public = dict(card_rows(CARD, public=True))
    assert "path" not in public and public["source"] == "local file tiny.gguf"


def test_report_card_table_is_readable_and_names_no_paths() -> None:
    results: dict[str, Any] = {
        "models": {"tiny": {"card": CARD}, "gone": {"card": {"name": "gone", "error": "no file"}}}
    }
    table = dict(card_table(results))
    assert table["file size"] == ["93.8 MiB", ""]
    assert table["error"] == ["", "no file"]
    labels = list(table)
    assert "parameters_human" not in labels and "file_size" not in labels
    assert not any("/srv/models" in cell for cells in table.values() for cell in cells)
