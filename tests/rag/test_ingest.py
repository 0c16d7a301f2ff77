"""`langdeploy ingest` end to end on an embedded Chroma: idempotence, changes, prune, bad input."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from langdeploy.retrieval.embeddings import Embedder, OnnxMiniLM, Vector
from langdeploy.retrieval.ingest import Ingestor
from langdeploy.retrieval.store import ChromaStore, store_path
from tests.rag.conftest import app_settings, ingest_json, make_app_dir, run_ingest


def chunks_by_source(app_dir: Path) -> dict[str, set[str]]:
    settings = app_settings(app_dir)
    store = ChromaStore(settings, OnnxMiniLM().id)
    ids, metas = store.get()
    out: dict[str, set[str]] = {}
    for cid, meta in zip(ids, metas, strict=True):
        out.setdefault(Path(meta["source"]).name, set()).add(cid)
    return out


def test_ingest_is_idempotent_replaces_changes_and_prunes(app_dir: Path, corpus: Path) -> None:
    first = ingest_json(app_dir, str(corpus))
    assert first["files"] == 5 and first["files_new"] == 5 and first["failed"] == []
    assert first["added"] == first["embedded"] == first["total_chunks"] > 5
    # The store is the app's: under the app directory, as settings say.
    assert (app_dir / ".langdeploy" / "chroma").is_dir()
    before = chunks_by_source(app_dir)
    assert len(before["espresso.md"]) > 1  # the long document was split
    assert len(before["faq.jsonl"]) == 2  # one chunk per record

    again = ingest_json(app_dir, str(corpus))
    assert again["embedded"] == again["added"] == again["removed"] == 0
    assert again["files_unchanged"] == 5 and again["unchanged"] == first["total_chunks"]
    assert again["total_chunks"] == first["total_chunks"]
    assert chunks_by_source(app_dir) == before

    # Change one paragraph of a multi-chunk file: only new text is embedded, old text goes.
    espresso = corpus / "guide" / "espresso.md"
    text = espresso.read_text()
    espresso.write_text(text.replace("Step 8:", "Step 8 (revised): descale the machine, then"))
    changed = ingest_json(app_dir, str(corpus))
    assert changed["files_changed"] == 1 and changed["files_unchanged"] == 4
    assert 1 <= changed["added"] < len(before["espresso.md"])
    assert changed["removed"] >= 1
    after = chunks_by_source(app_dir)
    assert after["espresso.md"] & before["espresso.md"]  # unchanged chunks kept their ids
    assert after["espresso.md"] != before["espresso.md"]
    assert {k: v for k, v in after.items() if k != "espresso.md"} == {
        k: v for k, v in before.items() if k != "espresso.md"
    }
    assert changed["total_chunks"] == sum(len(v) for v in after.values())

    # A deleted file keeps its chunks until --prune.
    (corpus / "vpn.txt").unlink()
    kept = ingest_json(app_dir, str(corpus))
    assert kept["removed"] == 0 and "vpn.txt" in chunks_by_source(app_dir)
    pruned = ingest_json(app_dir, str(corpus), "--prune")
    assert pruned["files_pruned"] == 1 and pruned["removed"] == len(before["vpn.txt"])
    assert "vpn.txt" not in chunks_by_source(app_dir)
    assert pruned["total_chunks"] == changed["total_chunks"] - len(before["vpn.txt"])


def test_prune_only_touches_the_paths_given(app_dir: Path, tmp_path: Path, corpus: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "note.txt").write_text("Fire drills happen on the first Monday of the month.")
    ingest_json(app_dir, str(corpus), str(other))
    (corpus / "kettle.md").unlink()
    summary = ingest_json(app_dir, str(corpus), "--prune")
    assert summary["files_pruned"] == 1
    assert {"note.txt", "vpn.txt"} <= set(chunks_by_source(app_dir))


def test_summary_and_collection_option(app_dir: Path, corpus: Path) -> None:
    result = run_ingest(app_dir, str(corpus), "--collection", "handbook")
    assert result.exit_code == 0, result.output
    assert "Ingested into collection 'handbook'" in result.stdout
    assert "5 new" in result.stdout and "added" in result.stdout
    assert "in the collection" in result.stdout
    settings = app_settings(app_dir, retrieval={"collection": "handbook"})
    assert ChromaStore(settings, OnnxMiniLM().id).count() > 0


def test_bad_input_gets_a_clear_error(app_dir: Path, tmp_path: Path, corpus: Path) -> None:
    missing = run_ingest(app_dir, str(tmp_path / "nope"))
    assert missing.exit_code == 1
    assert "no such file or directory" in missing.output and "Traceback" not in missing.output

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    result = run_ingest(app_dir, str(empty))
    assert result.exit_code == 1 and "No supported files" in result.output
    assert ".txt" in result.output  # the fix lists the formats

    (corpus / "firmware.txt").write_bytes(bytes(range(256)) * 8)
    (corpus / "latin1.md").write_bytes("caf\xe9 au lait".encode("latin-1"))
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (corpus / "bad.jsonl").write_text('{"text": "fine"}\n{not json\n')
    summary = run_ingest(app_dir, str(corpus), "--json")
    assert summary.exit_code == 0, summary.output
    assert "firmware.txt: looks like a binary file" in summary.stderr
    assert "latin1.md: is not valid UTF-8" in summary.stderr
    assert "broken.pdf: is not a readable PDF" in summary.stderr
    assert "bad.jsonl: line 2 is not valid JSON" in summary.stderr
    names = set(chunks_by_source(app_dir))
    assert names == {"kettle.md", "vpn.txt", "holidays.html", "faq.jsonl", "espresso.md"}

    only_binary = run_ingest(app_dir, str(corpus / "firmware.txt"))
    assert only_binary.exit_code == 1 and "binary" in only_binary.output

    bad_name = run_ingest(app_dir, str(corpus), "--collection", "x")
    # A bad option value is a usage error, reported as the settings report theirs.
    assert bad_name.exit_code == 2 and "Invalid settings:" in bad_name.output
    assert "--collection (retrieval.collection): got 'x'" in bad_name.output


def test_a_corrupt_copy_does_not_erase_a_good_ingest(app_dir: Path, corpus: Path) -> None:
    ingest_json(app_dir, str(corpus))
    before = chunks_by_source(app_dir)["vpn.txt"]
    (corpus / "vpn.txt").write_bytes(b"\x00\x01\x02 corrupted")
    summary = ingest_json(app_dir, str(corpus), "--prune")
    assert [f["path"].endswith("vpn.txt") for f in summary["failed"]] == [True]
    assert chunks_by_source(app_dir)["vpn.txt"] == before


class Interrupting(Embedder):
    """Embeds like the real model, then raises KeyboardInterrupt (Ctrl-C) on call ``stop_at``."""

    def __init__(self, stop_at: int) -> None:
        self.inner = OnnxMiniLM()
        self.calls = 0
        self.stop_at = stop_at

    @property
    def id(self) -> str:
        return self.inner.id

    def embed(self, texts: Sequence[str]) -> list[Vector]:
        self.calls += 1
        if self.calls == self.stop_at:
            raise KeyboardInterrupt
        return self.inner.embed(texts)


@pytest.mark.parametrize("stop_at", [2, 4])
def test_interrupted_ingest_is_completed_by_a_rerun(
    tmp_path: Path, corpus: Path, stop_at: int
) -> None:
    clean_dir = make_app_dir(tmp_path / "clean")
    clean = ingest_json(clean_dir, str(corpus))

    app_dir = make_app_dir(tmp_path / "interrupted")
    settings = app_settings(app_dir, retrieval={"batch_size": 2})
    with pytest.raises(KeyboardInterrupt):
        Ingestor(settings, embedder=Interrupting(stop_at)).run([corpus])
    partial = ChromaStore(settings, OnnxMiniLM().id).count()
    assert 0 < partial < clean["total_chunks"]

    rerun = ingest_json(app_dir, str(corpus))
    assert rerun["total_chunks"] == clean["total_chunks"]
    assert rerun["embedded"] == clean["total_chunks"] - partial  # nothing embedded twice
    assert chunks_by_source(app_dir) == chunks_by_source(clean_dir)
    assert ingest_json(app_dir, str(corpus))["embedded"] == 0


def test_collection_from_another_embedder_is_refused(app_dir: Path, corpus: Path) -> None:
    ingest_json(app_dir, str(corpus))
    env = {
        "LANGDEPLOY_RETRIEVAL__EMBEDDER": "llamacpp",
        "LANGDEPLOY_RETRIEVAL__EMBEDDING_MODEL": "smollm2-135m",
    }
    result = run_ingest(app_dir, str(corpus), env=env)
    assert result.exit_code == 1
    assert "holds vectors from the embedder 'onnx:all-MiniLM-L6-v2-int8'" in result.output
    assert "retrieval.collection" in result.output  # the fix


def test_store_path_follows_settings(tmp_path: Path, corpus: Path) -> None:
    store = tmp_path / "elsewhere" / "chroma"
    app_dir = make_app_dir(tmp_path / "app", f'[retrieval]\npath = "{store}"\n')
    assert store_path(app_settings(app_dir)) == store
    ingest_json(app_dir, str(corpus / "vpn.txt"))
    assert store.is_dir() and not (app_dir / ".langdeploy").exists()
