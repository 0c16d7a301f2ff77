"""Browser tests: Playwright for Python driving the system's Chromium (no browser download).

The page may reach 127.0.0.1 and nothing else: every other host is refused in the browser
context and recorded, and a test that made such a request fails, so a CDN reference fails the
run. Console errors and uncaught page errors are recorded too; tests assert on them.

Chromium comes from Debian's ``chromium`` package (``make test`` installs it); set
LANGDEPLOY_CHROMIUM to use another binary. Without a browser the tests are skipped with the
reason, except under CI=true, where a missing browser fails the run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import pytest

from langdeploy.models.factory import ModelHandle
from langdeploy.serve import create_app
from tests.rag.conftest import app_settings, ingest_json, make_app_dir, write_corpus
from tests.servers import UvicornThread

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
    "--disable-component-update",
    "--no-first-run",
]
# Kept by a test run that is asked for it: the README's screenshot of the chat playground.
DOCS_SCREENSHOT_ENV = "LANGDEPLOY_DOCS_SCREENSHOTS"
DOCS_DIR = Path(__file__).resolve().parents[2] / "docs"


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: browser tests must run in CI)", pytrace=False)
    pytest.skip(reason)


def chromium_path() -> str | None:
    configured = os.environ.get("LANGDEPLOY_CHROMIUM")
    if configured:
        return configured if Path(configured).is_file() else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed: pip install -e '.[dev]'")
    executable = chromium_path()
    if executable is None:
        _unavailable(
            "no Chromium found (apt-get install chromium, or set LANGDEPLOY_CHROMIUM): "
            "browser tests skipped"
        )
    from playwright.sync_api import expect

    # Assertions wait on the page's state; on a loaded 2-core machine ReDoc takes seconds to
    # lay out the whole API, so the bound on that wait is generous (it is not a sleep).
    expect.set_options(timeout=60_000)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class Tab:
    """A page in a fresh browser context, with what it tried to reach and what went wrong."""

    page: Any
    shots: Path
    blocked: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def screenshot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


def _local(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("data", "blob", "about", "file") or parts.hostname == "127.0.0.1"


@pytest.fixture
def tab(browser: Any, tmp_path: Path) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1100, "height": 820})
    shots = tmp_path / "screenshots"
    shots.mkdir()
    tab = Tab(page=None, shots=shots)

    def guard(route: Any) -> None:
        url = route.request.url
        if _local(url):
            route.continue_()
        else:
            tab.blocked.append(url)
            route.abort("blockedbyclient")

    context.route("**/*", guard)
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.on("console", lambda m: m.type == "error" and tab.console_errors.append(m.text))
    page.on("pageerror", lambda e: tab.page_errors.append(str(e)))
    tab.page = page
    yield tab
    context.close()
    assert tab.blocked == [], f"the page tried to reach hosts other than 127.0.0.1: {tab.blocked}"


@pytest.fixture(scope="package")
def ui_server(tmp_path_factory: pytest.TempPathFactory, model: ModelHandle) -> Iterator[Any]:
    """Every built-in chain, rag over an ingested corpus included, on uvicorn."""
    root = tmp_path_factory.mktemp("ui")
    app_dir = make_app_dir(root / "app")
    ingest_json(app_dir, str(write_corpus(root / "docs")))
    settings = app_settings(app_dir, server={"chains": ["chat", "summarize", "extract"]})
    with UvicornThread(create_app(settings, model=model)) as server:
        yield server
