"""Client-server mode: a real `chroma run` on 127.0.0.1, shared by the CLI and two app replicas."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from langdeploy.models.factory import ModelHandle
from langdeploy.retrieval.retriever import Retriever
from langdeploy.serve import create_app
from tests.rag.conftest import app_settings, ingest_json, make_app_dir, run_ingest, write_corpus
from tests.servers import free_port, wait_http


def chroma_executable() -> str:
    # The chroma CLI is installed beside the interpreter by the chromadb wheel.
    beside = Path(sys.executable).parent / "chroma"
    found = str(beside) if beside.exists() else shutil.which("chroma")
    if not found:
        pytest.fail("the `chroma` command is missing: pip install 'langdeploy[rag]'")
    return found


class ChromaServer:
    """`chroma run --path DIR --port PORT` on 127.0.0.1, stopped by the test."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.port = free_port()
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> ChromaServer:
        # Logs go to a file: a full pipe would block the server.
        self.log = (self.path.parent / "chroma.log").open("w")
        self.proc = subprocess.Popen(
            [chroma_executable(), "run", "--path", str(self.path), "--host", "127.0.0.1",
             "--port", str(self.port)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
        )  # fmt: skip
        wait_http(f"http://127.0.0.1:{self.port}/api/v2/heartbeat", timeout=60, proc=self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
            self.log.close()


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[ChromaServer]:
    server = ChromaServer(tmp_path / "chroma-server").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.slow
def test_server_mode_shared_by_replicas(
    tmp_path: Path, chroma_server: ChromaServer, model: ModelHandle
) -> None:
    corpus = write_corpus(tmp_path / "docs")
    toml = f'[retrieval]\nmode = "server"\nhost = "127.0.0.1"\nport = {chroma_server.port}\n'
    # Two app directories stand for two replicas with the same settings and no local store.
    replica_a = make_app_dir(tmp_path / "a", toml)
    replica_b = make_app_dir(tmp_path / "b", toml)

    first = ingest_json(replica_a, str(corpus))
    assert first["added"] == first["total_chunks"] > 5
    assert first["location"] == f"http://127.0.0.1:{chroma_server.port}"
    assert not (replica_a / ".langdeploy").exists()
    # The other replica sees the same collection: nothing to embed again.
    again = ingest_json(replica_b, str(corpus))
    assert again["embedded"] == 0 and again["total_chunks"] == first["total_chunks"]

    hits = Retriever(app_settings(replica_b)).relevant("Which UDP port does the VPN use?")
    assert Path(hits[0].source).name == "vpn.txt"

    app = create_app(app_settings(replica_a), model=model)
    assert "rag" in app.state.chain_paths  # the collection exists on the server
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.post("/rag/invoke", json={"input": {"question": "How do I descale a kettle?"}})
        assert r.status_code == 200, r.text
        assert Path(r.json()["output"]["sources"][0]["source"]).name == "kettle.md"

        # The store goes away: a clear 503 with Retry-After, not a 500.
        chroma_server.stop()
        r = client.post("/rag/invoke", json={"input": {"question": "How do I descale a kettle?"}})
        assert r.status_code == 503, r.text
        assert "Chroma" in r.json()["error"]["message"] and r.headers["retry-after"]

    down = run_ingest(replica_a, str(corpus))
    assert down.exit_code == 1 and "Chroma server" in down.output
    assert "Traceback" not in down.output


def test_server_mode_auth_token_is_sent(tmp_path: Path, chroma_server: ChromaServer) -> None:
    # Chroma's own server has no token auth; a proxy in front of it does. The token must go out
    # on every request and must not stop a server without auth from working.
    toml = (
        f'[retrieval]\nmode = "server"\nport = {chroma_server.port}\n'
        'auth_token = "s3cret"\nauth_header = "X-Chroma-Token"\n'
    )
    app_dir = make_app_dir(tmp_path / "app", toml)
    settings = app_settings(app_dir)
    from langdeploy.retrieval.store import open_client

    client = open_client(settings)
    assert client.heartbeat() > 0
    headers = client._server._session.headers  # the HTTP session every request goes through
    assert headers["X-Chroma-Token"] == "s3cret"
    summary = ingest_json(app_dir, str(write_corpus(tmp_path / "docs", {"a.txt": "Hello."})))
    assert summary["added"] == 1
