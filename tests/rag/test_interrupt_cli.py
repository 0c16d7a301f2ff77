"""Ctrl-C during `langdeploy ingest`, in a real process: a clear message, and a rerun completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from langdeploy.retrieval.embeddings import OnnxMiniLM
from langdeploy.retrieval.store import ChromaStore
from tests.rag.conftest import app_settings, ingest_json, make_app_dir

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_sigint_leaves_a_collection_that_a_rerun_completes(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    words = ["the", "kettle", "needs", "descaling", "every", "month", "in", "hard", "water"]
    for n in range(100):
        # Two chunks per file of plain words (cheap to embed), each file different.
        paragraphs = [
            f"Note {n}.{p}: " + " ".join(words[(n + p + i) % len(words)] for i in range(110))
            for p in range(2)
        ]
        (docs / f"doc-{n:03d}.txt").write_text("\n\n".join(paragraphs))
    app_dir = make_app_dir(tmp_path / "app")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LANGDEPLOY_RETRIEVAL__BATCH_SIZE": "8"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from langdeploy.cli import main; main()", "ingest", str(docs),
         "--app-dir", str(app_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )  # fmt: skip
    # Long enough to load the embedder and write some batches, too short to finish.
    time.sleep(8)
    assert proc.poll() is None, proc.communicate()[0]
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "Interrupted" in out and "run the same command again" in out
    assert "Traceback" not in out

    rerun = ingest_json(app_dir, str(docs))
    assert rerun["files"] == 100 and rerun["files_unchanged"] > 0  # the first run's work kept
    assert rerun["files_new"] + rerun["files_changed"] > 0  # and the rest done now
    settings = app_settings(app_dir)
    ids, metas = ChromaStore(settings, OnnxMiniLM().id).get()
    per_file: dict[str, int] = {}
    for meta in metas:
        per_file[meta["source"]] = per_file.get(meta["source"], 0) + 1
    # Every file complete, none twice: each holds exactly the chunks it says it has.
    assert len(per_file) == 100 and len(set(ids)) == len(ids) == rerun["total_chunks"]
    assert all(per_file[m["source"]] == m["n_chunks"] for m in metas)
    assert ingest_json(app_dir, str(docs))["embedded"] == 0
