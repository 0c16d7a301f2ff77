"""Ctrl-C during `langdeploy ingest`, in a real process: a clear message, and a rerun completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from langdeploy.retrieval.embeddings import OnnxMiniLM
from langdeploy.retrieval.store import ChromaStore
from tests.rag.conftest import app_settings, ingest_json, make_app_dir

ROOT = Path(__file__).resolve().parents[2]
FILES, CHUNKS_PER_FILE, BATCH = 40, 2, 8
STOP_AT = 4  # the embed call that the interrupt lands in: three batches are written before it
MARK = "test-driver: in embed call"

# The CLI as a user runs it, with the embedder patched to stop at a known point: it announces
# the call on stdout and waits there, so the test interrupts mid-ingest whatever the machine's
# speed. The wait wakes every few milliseconds rather than blocking in pause(): the kernel may
# hand SIGINT to another of the process's threads (onnxruntime's), and Python raises the
# KeyboardInterrupt in the main thread only once that thread runs bytecode again.
DRIVER = f"""
import signal, sys, threading
from langdeploy.retrieval.embeddings import OnnxMiniLM

# A shell that started the test run in the background hands its children SIGINT ignored; a
# user at a terminal has Python's default handler, so the driver puts that back.
signal.signal(signal.SIGINT, signal.default_int_handler)

real, calls = OnnxMiniLM.embed, [0]

def embed(self, texts):
    calls[0] += 1
    if calls[0] == {STOP_AT}:
        print("{MARK}", calls[0], flush=True)
        while True:
            threading.Event().wait(0.01)
    return real(self, texts)

OnnxMiniLM.embed = embed
from langdeploy.cli import main
sys.argv[0] = "langdeploy"
main()
"""


@pytest.mark.slow
def test_sigint_leaves_a_collection_that_a_rerun_completes(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    words = ["the", "kettle", "needs", "descaling", "every", "month", "in", "hard", "water"]
    for n in range(FILES):
        # Two chunks per file of plain words (cheap to embed), each file different.
        paragraphs = [
            f"Note {n}.{p}: " + " ".join(words[(n + p + i) % len(words)] for i in range(110))
            for p in range(CHUNKS_PER_FILE)
        ]
        (docs / f"doc-{n:03d}.txt").write_text("\n\n".join(paragraphs))
    app_dir = make_app_dir(tmp_path / "app")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LANGDEPLOY_RETRIEVAL__BATCH_SIZE": str(BATCH)}
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, "ingest", str(docs), "--app-dir", str(app_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    for line in proc.stdout:  # ends at EOF if the process exits before the mark
        seen.append(line)
        if line.startswith(MARK):
            break
    assert seen and seen[-1].startswith(MARK), "".join(seen)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "Interrupted" in out and "run the same command again" in out
    assert "Traceback" not in out

    rerun = ingest_json(app_dir, str(docs))
    # What the first run wrote before the interrupt is kept; the rest is done now.
    done_before = (STOP_AT - 1) * BATCH // CHUNKS_PER_FILE
    assert rerun["files"] == FILES and rerun["files_unchanged"] == done_before
    assert rerun["files_new"] == FILES - done_before and rerun["files_changed"] == 0
    settings = app_settings(app_dir)
    ids, metas = ChromaStore(settings, OnnxMiniLM().id).get()
    per_file: dict[str, int] = {}
    for meta in metas:
        per_file[meta["source"]] = per_file.get(meta["source"], 0) + 1
    # Every file complete, none twice: each holds exactly the chunks it says it has.
    assert len(per_file) == FILES and len(set(ids)) == len(ids) == rerun["total_chunks"]
    assert all(per_file[m["source"]] == m["n_chunks"] for m in metas)
    assert ingest_json(app_dir, str(docs))["embedded"] == 0
