"""`langdeploy upgrade`: a newer template re-applied without losing the user's edits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from langdeploy.cli import app
from langdeploy.templates import AppTemplate, template_registry

runner = CliRunner()


def fixture(layer: str) -> AppTemplate:
    return AppTemplate(
        name="upgradable",
        description="A plugin's template, in two versions.",
        chain="chat",
        package="tests.templates",
        layers=(layer,),
        variables={"temperature": "0.5"},
    )


@pytest.fixture
def v1_app(tmp_path: Path) -> Iterator[Path]:
    template_registry.register(fixture("fixture_template"), replace=True)
    dest = tmp_path / "up_app"
    result = runner.invoke(app, ["new", "up_app", "--template", "upgradable", "--dir", str(dest)])
    assert result.exit_code == 0, result.output
    yield dest
    template_registry.unregister("upgradable")


def test_upgrade_merges_the_new_template_with_the_users_edits(v1_app: Path) -> None:
    notes = v1_app / "notes"
    (notes / "a.txt").write_text("ONE, my edit\ntwo\nthree\nfour\nfive\n")
    (v1_app / "chains" / "NOTE.md").write_text("My own note.\n")
    (v1_app / "mine.txt").write_text("untouched\n")

    template_registry.register(fixture("fixture_template_v2"), replace=True)
    result = runner.invoke(app, ["upgrade", "--app-dir", str(v1_app)])

    # Both changed NOTE.md's only line: a conflict, reported, with both versions in the file.
    assert result.exit_code == 1
    assert "conflict: chains/NOTE.md" in result.output
    note = (v1_app / "chains" / "NOTE.md").read_text()
    assert "My own note." in note and "version 2" in note and "<<<<<<< yours" in note
    # Different lines of a.txt: merged cleanly, the user's edit and the template's both kept.
    assert (notes / "a.txt").read_text() == "ONE, my edit\ntwo\nthree\nfour\nFIVE from v2\n"
    assert "merged with your edits: notes/a.txt" in result.output
    # Untouched by the user: updated, added and removed as the template says.
    assert (notes / "b.txt").read_text() == "keep\nadded by v2\n"
    assert (notes / "new.txt").read_text() == "new in v2\n"
    assert not (notes / "gone.txt").exists()
    assert (v1_app / "mine.txt").read_text() == "untouched\n"

    again = runner.invoke(app, ["upgrade", "--app-dir", str(v1_app)])
    assert again.exit_code == 0 and "up to date" in again.output


def test_a_user_deleted_file_stays_deleted(v1_app: Path) -> None:
    (v1_app / "notes" / "b.txt").unlink()
    template_registry.register(fixture("fixture_template_v2"), replace=True)
    result = runner.invoke(app, ["upgrade", "--app-dir", str(v1_app)])
    assert result.exit_code == 0, result.output
    assert not (v1_app / "notes" / "b.txt").exists()
    assert "kept as you have it: notes/b.txt" in result.output


def test_a_fresh_app_is_up_to_date(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["new", "fresh_app", "--template", "extract"]).exit_code == 0
    monkeypatch.chdir(tmp_path / "fresh_app" / "chains")  # found from a folder inside the app
    result = runner.invoke(app, ["upgrade"])
    assert result.exit_code == 0 and "up to date" in result.output


def test_upgrade_outside_an_app_says_where_to_run_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["upgrade"])
    assert result.exit_code == 1 and "--app-dir" in result.output
    (tmp_path / "langdeploy.toml").write_text("")
    result = runner.invoke(app, ["upgrade"])
    assert result.exit_code == 1 and ".langdeploy-template/answers.json" in result.output
