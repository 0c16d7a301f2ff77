"""Shared fixtures: the real bundled model, loaded once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from langdeploy.models.factory import ModelHandle, build_model
from langdeploy.serve import create_app
from langdeploy.settings import Settings, load_settings
from tests.servers import UvicornThread

# Deterministic, short answers keep the suite fast; the assertions never depend on wording.
# queue_timeout_s at its bound: a busy machine may take minutes to reach a map-reduce's last
# piece, and a test must not fail for being slow; only a hang should.
TEST_MODEL = {
    "temperature": 0.0,
    "max_tokens": 24,
    "seed": 7,
    "n_ctx": 2048,
    "queue_timeout_s": 3600,
}


@pytest.fixture(scope="session")
def empty_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with no langdeploy.toml or .env, so settings come from defaults only."""
    return tmp_path_factory.mktemp("noapp")


def make_settings(empty_dir: Path, **sections: dict[str, object]) -> Settings:
    model = {**TEST_MODEL, **sections.pop("model", {})}
    return load_settings(app_dir=empty_dir, model=model, **sections)


@pytest.fixture(scope="session")
def settings(empty_dir: Path) -> Settings:
    return make_settings(empty_dir)


@pytest.fixture(scope="session")
def model(settings: Settings) -> ModelHandle:
    handle = build_model(settings.model, shared=True)
    handle.load()
    return handle


@pytest.fixture(scope="module")
def client(settings: Settings, model: ModelHandle) -> Iterator[TestClient]:
    with TestClient(create_app(settings, model=model), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def live_server(settings: Settings, model: ModelHandle) -> Iterator[UvicornThread]:
    with UvicornThread(create_app(settings, model=model)) as server:
        yield server
