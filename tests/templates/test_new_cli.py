"""`langdeploy new` and `langdeploy templates list` as a user runs them: names, folders, plugins."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from langdeploy.cli import app
from langdeploy.templates import AppTemplate, template_registry

runner = CliRunner()
BUILTIN = {"chat", "rag", "summarize", "extract"}


def new(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["new", *args])
    return result.exit_code, result.output


def test_templates_list_names_each_template_and_what_it_includes() -> None:
    result = runner.invoke(app, ["templates", "list", "--json"])
    assert result.exit_code == 0, result.output
    listed = {t["name"]: t for t in json.loads(result.output)}
    assert set(listed) >= BUILTIN
    for name in BUILTIN:
        assert listed[name]["description"]
        assert any("deploy/" in item for item in listed[name]["includes"])
    table = runner.invoke(app, ["templates", "list"])
    assert table.exit_code == 0 and all(name in table.output for name in BUILTIN)


def test_new_writes_the_design_layout(tmp_path: Path) -> None:
    code, out = new("my_app", "--template", "summarize", "--dir", str(tmp_path / "my_app"))
    assert code == 0, out
    root = tmp_path / "my_app"
    for rel in (
        "pyproject.toml",
        "langdeploy.toml",
        "README.md",
        ".env.example",
        "chains/app.py",
        "guards/guards.yaml",
        "guards/custom.py",
        "tests/conftest.py",
        "deploy/docker/Dockerfile",
        "deploy/compose/compose.yaml",
        "deploy/k8s/kustomization.yaml",
        ".langdeploy-template/answers.json",
        ".langdeploy-template/base/chains/app.py",
    ):
        assert (root / rel).is_file(), rel
    config = tomllib.loads((root / "langdeploy.toml").read_text())
    assert config["server"]["chains"] == ["brief"]
    assert config["app"]["modules"] == ["chains.app", "guards.custom"]
    assert config["deploy"]["name"] == "my-app"
    # The VM target needs a hostname first: the user is told how to render it.
    assert "deploy/vm was not rendered" in out and "--target vm" in out
    assert not list(tmp_path.glob(".my_app*")), "the staging directory was left behind"


def test_new_defaults_to_a_folder_named_after_the_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out = new("helper", "--template", "chat", "--model", "smollm2-135m")
    assert code == 0, out
    assert tomllib.loads((tmp_path / "helper" / "langdeploy.toml").read_text())["model"] == {
        "name": "smollm2-135m",
        "temperature": 0.2,
        "max_tokens": 200,
    }


def test_a_model_path_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    models = tmp_path / 'my "models"'
    models.mkdir()
    (models / "tiny.gguf").write_bytes(b"GGUF")
    code, out = new("local_model", "--model", 'my "models"/tiny.gguf')
    assert code == 0, out
    config = tomllib.loads((tmp_path / "local_model" / "langdeploy.toml").read_text())
    assert config["model"]["name"] == str(models / "tiny.gguf")
    # A local model file has no way onto a cluster until deploy.model_url is set: say so.
    assert "deploy/k8s was not rendered" in out and "model_url" in out


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("My-App", "'my_app'"),
        ("2fast", "'app_2fast'"),
        ("app_", "not ending with an underscore"),
        ("class", "keyword"),
        ("json", "standard-library"),
        ("chains", "folder of the app"),
        ("a" * 41, "at most 40"),
    ],
)
def test_invalid_names_are_refused_with_a_fix(tmp_path: Path, name: str, expected: str) -> None:
    code, out = new(name, "--dir", str(tmp_path / "x"))
    assert code == 1
    assert "Error:" in out and expected in " ".join(out.split())
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("name", ["../evil", "a/b", "..", ".hidden", "/tmp/x"])
def test_a_path_as_name_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out = new(name)
    assert code == 1
    assert "looks like a path" in out and "--dir" in out
    assert list(tmp_path.iterdir()) == []


def test_unknown_template_and_model_are_named(tmp_path: Path) -> None:
    code, out = new("ok_app", "--template", "nope", "--dir", str(tmp_path / "a"))
    assert code == 1 and "Unknown template 'nope'" in out and "summarize" in out
    code, out = new("ok_app", "--model", "nope", "--dir", str(tmp_path / "b"))
    assert code == 1 and "smollm2-135m" in out
    code, out = new("ok_app", "--model", "missing.gguf", "--dir", str(tmp_path / "c"))
    assert code == 1 and "does not exist" in out
    assert not any(tmp_path.iterdir())


def test_a_non_empty_directory_needs_force(tmp_path: Path) -> None:
    dest = tmp_path / "existing"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    (dest / "README.md").write_text("old readme")
    code, out = new("existing_app", "--dir", str(dest))
    assert code == 1 and "not empty" in out and "--force" in out
    assert sorted(p.name for p in dest.iterdir()) == ["README.md", "notes.txt"]

    code, out = new("existing_app", "--dir", str(dest), "--force")
    assert code == 0, out
    assert (dest / "notes.txt").read_text() == "mine"
    assert "existing_app" in (dest / "README.md").read_text()
    assert (dest / "chains" / "app.py").is_file()


def test_an_empty_directory_is_fine(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, out = new("empty_ok", "--dir", str(tmp_path / "empty"))
    assert code == 0, out
    assert (tmp_path / "empty" / "langdeploy.toml").is_file()


@pytest.fixture
def plugin_template() -> Iterator[None]:
    # What a third-party package's register_templates hook does, with files in its own package.
    def register(temperature: str, name: str) -> None:
        template_registry.register(
            AppTemplate(
                name=name,
                description="A plugin's template.",
                chain="chat",
                package="tests.templates",
                layers=("fixture_template",),
                includes=("a note",),
                variables={"temperature": temperature},
            ),
            replace=True,
        )

    register("0.5", "plugin-good")
    register("9", "plugin-bad")  # fails the settings' bounds when deploy/ is rendered
    yield
    template_registry.unregister("plugin-good")
    template_registry.unregister("plugin-bad")


@pytest.mark.usefixtures("plugin_template")
def test_a_plugin_template_is_listed_and_rendered(tmp_path: Path) -> None:
    listed = json.loads(runner.invoke(app, ["templates", "list", "--json"]).output)
    assert "plugin-good" in {t["name"] for t in listed}
    code, out = new("from_plugin", "--template", "plugin-good", "--dir", str(tmp_path / "p"))
    assert code == 0, out
    note = (tmp_path / "p" / "chains" / "NOTE.md").read_text()
    assert note == "From Plugin from the plugin-good template of a plugin.\n"
    assert (tmp_path / "p" / "deploy" / "docker" / "Dockerfile").is_file()


@pytest.mark.usefixtures("plugin_template")
def test_a_failed_render_leaves_nothing_behind(tmp_path: Path) -> None:
    code, out = new("half_app", "--template", "plugin-bad", "--dir", str(tmp_path / "h"))
    assert code == 1
    assert "model.temperature" in out
    assert list(tmp_path.iterdir()) == []


def test_the_generated_deploy_manifests_validate(tmp_path: Path) -> None:
    from langdeploy.deploy.validate import validate_dir

    code, out = new("shipped", "--template", "extract", "--dir", str(tmp_path / "shipped"))
    assert code == 0, out
    for target in ("docker", "compose", "k8s"):
        results = validate_dir(
            tmp_path / "shipped" / "deploy" / target, kubernetes_version="1.30.0"
        )
        failed = [r for r in results if r.status == "fail"]
        assert results and not failed, failed
