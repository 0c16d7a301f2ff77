"""Fixtures for the rag tests: a small corpus, an app directory, and the CLI as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from langdeploy.cli import app as cli_app
from langdeploy.settings import Settings, load_settings
from tests.conftest import TEST_MODEL

# Each answer sits in exactly one document.
CORPUS: dict[str, str] = {
    "kettle.md": "# Descaling the kettle\n\n"
    "Limescale builds up in a kettle in hard-water areas. To descale the kettle, fill it "
    "half way with equal parts white vinegar and water, bring it to the boil, and leave it "
    "to soak for an hour. Rinse it three times with clean water before you use it again.\n",
    "vpn.txt": "Connecting to the office VPN\n\n"
    "Install the WireGuard client, import the profile that IT e-mailed you, and switch the "
    "tunnel on. The VPN gateway is vpn.example.org on UDP port 51820. If the tunnel drops, "
    "check that your laptop clock is correct.\n",
    "holidays.html": "<html><head><title>Leave policy</title><style>p{color:red}</style>"
    "</head><body><h1>Annual leave</h1><p>Every employee gets twenty-eight days of paid "
    "annual leave a year, including public holidays. Unused days may be carried over until "
    "the end of March.</p><script>trackVisitor()</script></body></html>",
    "faq.jsonl": json.dumps(
        {
            "id": "parking",
            "text": "Staff parking is in the multi-storey car "
            "park on Mill Lane; ask reception for a permit.",
        }
    )
    + "\n"
    + json.dumps(
        {
            "id": "lunch",
            "text": "The canteen serves lunch between noon and two o'clock on weekdays.",
        }
    )
    + "\n",
    "guide/espresso.md": "# Espresso\n\n"
    + "\n\n".join(
        f"Step {n}: grind eighteen grams of coffee finely, tamp it level, and pull the shot "
        f"for twenty-eight seconds at nine bar. Note {n} about crema and temperature."
        for n in range(1, 9)
    ),
}


def write_corpus(root: Path, files: dict[str, str] | None = None) -> Path:
    for name, text in (files or CORPUS).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "docs")


def make_app_dir(root: Path, toml: str = "") -> Path:
    """An app directory: langdeploy.toml makes it the app whose store ingest uses."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "langdeploy.toml").write_text(toml, encoding="utf-8")
    return root


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    return make_app_dir(tmp_path / "app")


def app_settings(app_dir: Path, **sections: Any) -> Settings:
    model = {**TEST_MODEL, **sections.pop("model", {})}
    return load_settings(app_dir=app_dir, model=model, **sections)


def run_ingest(app_dir: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    """`langdeploy ingest ... --app-dir APP` through typer's CliRunner."""
    return CliRunner().invoke(
        cli_app, ["ingest", *args, "--app-dir", str(app_dir)], env=env, catch_exceptions=False
    )


def ingest_json(app_dir: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run the CLI with --json and return its summary (and fail with its output otherwise)."""
    result = run_ingest(app_dir, *args, "--json", env=env)
    assert result.exit_code == 0, result.output
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary
