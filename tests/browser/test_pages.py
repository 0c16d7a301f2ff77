"""The pages a person opens besides the playgrounds: the home page, /docs, /redoc and the eval
report, in Chromium, offline (the tab fixture refuses every host but 127.0.0.1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from langdeploy.evaluate import EvalConfig, run_eval
from langdeploy.models.factory import ModelHandle
from langdeploy.settings import Settings
from tests.browser.conftest import Tab

pytestmark = pytest.mark.slow


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def test_home_page_lists_chains_model_and_endpoints(
    tab: Tab, ui_server: Any, model: ModelHandle
) -> None:
    page, expect = tab.page, _expect()
    page.goto(f"{ui_server.url}/")
    chains = page.locator("#chains")
    for name in ("chat", "summarize", "extract", "rag"):
        expect(chains).to_contain_text(f"/{name}")
    expect(page.locator("#readiness")).to_have_text("ready")
    expect(page.locator("#model-card")).to_contain_text("parameters")
    expect(page.locator("#model-card")).to_contain_text("MiB")
    expect(page.get_by_text("/v1/chat/completions").first).to_be_visible()
    text = page.locator("body").inner_text()
    assert str(Path(str(getattr(model, "path", "/nowhere"))).parent) not in text
    tab.screenshot("home")

    # The links lead somewhere real: the chat playground opens as a chat.
    page.locator("#chains a", has_text="playground").first.click()
    expect(page.get_by_placeholder("Send a message...")).to_be_visible()
    assert tab.console_errors == [] and tab.page_errors == []


def test_swagger_ui_renders_offline(tab: Tab, ui_server: Any) -> None:
    page, expect = tab.page, _expect()
    page.goto(f"{ui_server.url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("langdeploy")
    expect(page.locator(".opblock-summary-path", has_text="/chat/invoke").first).to_be_visible()
    tab.screenshot("docs")
    assert tab.console_errors == [] and tab.page_errors == []


def test_redoc_renders_offline(tab: Tab, ui_server: Any) -> None:
    page, expect = tab.page, _expect()
    page.goto(f"{ui_server.url}/redoc")
    expect(page.locator("h1", has_text="langdeploy").first).to_be_visible()
    expect(page.get_by_text("/chat/invoke").first).to_be_attached()
    tab.screenshot("redoc")
    assert tab.console_errors == [] and tab.page_errors == []


def test_eval_report_renders_plots_and_readable_cards(
    tab: Tab, tmp_path: Path, settings: Settings
) -> None:
    page, expect = tab.page, _expect()
    dataset = tmp_path / "data.jsonl"
    rows = [
        {"id": "capital", "input": "What is the capital of France?", "expected": "Paris"},
        {"id": "sum", "input": "What is 2 + 3?", "expected": r"\b5\b", "metric": "regex"},
    ]
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out"
    run_eval(
        EvalConfig(dataset=dataset, models=["smollm2-135m"], out_dir=out, max_tokens=8,
                   bias=True, bias_limit=1, use_cache=False),
        settings,
    )  # fmt: skip
    report = next(out.glob("*.html"))
    page.goto(report.as_uri())
    expect(page.locator(".plots svg").first).to_be_visible()
    assert page.locator(".plots svg").count() >= 2
    cards = page.locator("h2:text-is('Model cards') + table")
    for label in ("parameters", "context length", "file size", "instruction-tuned"):
        expect(cards.locator("th", has_text=label).first).to_be_visible()
    expect(cards).to_contain_text("MiB")
    expect(cards).to_contain_text("tokens")
    for raw in ("parameters_human", "file_size", "context_length"):
        expect(cards).not_to_contain_text(raw)
    tab.screenshot("eval-report")
    assert tab.console_errors == [] and tab.page_errors == []
