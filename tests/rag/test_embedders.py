"""The alternative embedders, used the way a user configures them: a GGUF through llama.cpp, and an
OpenAI-compatible /embeddings endpoint (a real llama_cpp.server on 127.0.0.1)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from langdeploy.models import catalog
from langdeploy.retrieval.retriever import Retriever
from tests.rag.conftest import app_settings, ingest_json, make_app_dir, run_ingest, write_corpus
from tests.servers import free_port, wait_http

FILES = {
    "vpn.txt": "The VPN gateway listens on UDP port 51820.",
    "lunch.txt": "The canteen serves lunch from noon to two.",
}


@pytest.mark.slow
def test_llamacpp_embedder_from_a_gguf(tmp_path: Path) -> None:
    toml = '[retrieval]\nembedder = "llamacpp"\nembedding_model = "smollm2-135m"\n'
    app_dir = make_app_dir(tmp_path / "app", toml)
    summary = ingest_json(app_dir, str(write_corpus(tmp_path / "docs", FILES)))
    assert summary["added"] == 2 and summary["failed"] == []
    retriever = Retriever(app_settings(app_dir))
    assert retriever.store.embedder_id == "llamacpp:SmolLM2-135M-Instruct.Q4_1.gguf"
    # A chat model is a poor embedder; the check is that vectors round-trip, not their quality.
    found = retriever.search("Which port does the VPN use?", k=2)
    assert {Path(c.source).name for c in found} == set(FILES)
    assert all(-1.0 <= c.score <= 1.0 for c in found)


@pytest.fixture(scope="module")
def embeddings_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    # llama.cpp logs a lot: to a file, since a full pipe would block the server.
    log = (tmp_path_factory.mktemp("llama-server") / "server.log").open("w")
    path, _ = catalog.resolve("smollm2-135m")
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--embedding", "true",
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "512",
         "--model_alias", "smollm2-embed"],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models", timeout=120, proc=proc)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


@pytest.mark.slow
def test_openai_compatible_embeddings_endpoint(tmp_path: Path, embeddings_server: str) -> None:
    toml = (
        f'[retrieval]\nembedder = "openai"\nembedding_base_url = "{embeddings_server}"\n'
        'embedding_model = "smollm2-embed"\n'
    )
    app_dir = make_app_dir(tmp_path / "app", toml)
    docs = write_corpus(tmp_path / "docs", FILES)
    summary = ingest_json(app_dir, str(docs))
    assert summary["added"] == 2
    retriever = Retriever(app_settings(app_dir))
    assert retriever.store.embedder_id == "openai:smollm2-embed"
    assert len(retriever.search("lunch time?", k=2)) == 2


def test_unreachable_embeddings_endpoint_is_a_clear_error(tmp_path: Path) -> None:
    toml = (
        f'[retrieval]\nembedder = "openai"\nembedding_base_url = "http://127.0.0.1:{free_port()}/v1"\n'
        'embedding_model = "m"\nembedding_timeout_s = 5\n'
    )
    app_dir = make_app_dir(tmp_path / "app", toml)
    result = run_ingest(app_dir, str(write_corpus(tmp_path / "docs", FILES)))
    assert result.exit_code == 1
    assert "embeddings endpoint" in result.output and "did not answer" in result.output
    assert "Traceback" not in result.output


def test_openai_embedder_needs_its_settings(tmp_path: Path) -> None:
    app_dir = make_app_dir(tmp_path / "app", '[retrieval]\nembedder = "openai"\n')
    result = run_ingest(app_dir, str(write_corpus(tmp_path / "docs", FILES)))
    assert result.exit_code == 1
    assert "retrieval.embedding_base_url and retrieval.embedding_model are required" in (
        result.output
    )
