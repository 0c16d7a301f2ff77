"""Fast checks of the parts: loaders, chunk ids, the offline embedder, the rag chain's logic."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from langdeploy.chains.rag import NO_ANSWER, rag_chain
from langdeploy.chains.registry import ChainContext
from langdeploy.errors import InputError
from langdeploy.retrieval import loaders
from langdeploy.retrieval.embeddings import OnnxMiniLM
from langdeploy.retrieval.ingest import chunk_id, discover
from langdeploy.retrieval.store import RetrievedChunk
from tests.rag.conftest import app_settings, make_app_dir


def make_pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF with one line of Helvetica text per page."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>"]
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(len(pages)))
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>")
    font = 3 + 2 * len(pages)
    for i, text in enumerate(pages):
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET"
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font} 0 R >> >> >>"
        )
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    objects.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = b"%PDF-1.4\n"
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return out


def test_pdf_pages_become_sections(tmp_path: Path) -> None:
    path = tmp_path / "manual.pdf"
    path.write_bytes(make_pdf(["Press the red button to start.", "Hold it to stop."]))
    sections = loaders.load(path)
    assert [s.metadata["page"] for s in sections] == [1, 2]
    assert "red button" in sections[0].text and "Hold it" in sections[1].text


def test_html_keeps_text_and_drops_scripts(tmp_path: Path) -> None:
    path = tmp_path / "page.html"
    path.write_text(
        "<html><head><title>T</title><style>.a{}</style></head><body><h1>Title</h1>"
        "<p>First &amp; second.</p><script>alert(1)</script><p>Third</p></body></html>"
    )
    (section,) = loaders.load(path)
    assert section.text == "Title\nFirst & second.\nThird"


def test_jsonl_records(tmp_path: Path) -> None:
    path = tmp_path / "kb.jsonl"
    rows = [{"id": 7, "content": "alpha"}, "beta", {"page_content": "gamma", "x": 1}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    sections = loaders.load(path)
    assert [s.text for s in sections] == ["alpha", "beta", "gamma"]
    assert sections[0].metadata == {"line": 1, "record": "7"}
    path.write_text('{"title": "no text here"}\n')
    with pytest.raises(loaders.UnreadableFile, match="line 1 has no text field"):
        loaders.load(path)


def test_unsupported_file_named_explicitly_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "slides.pptx"
    path.write_bytes(b"PK")
    with pytest.raises(loaders.UnreadableFile, match=r"the format \.pptx is not supported"):
        loaders.load(path)


def test_discover_skips_hidden_and_counts_ignored(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "notes.txt").write_text("x")
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "b.bin").write_bytes(b"\0")
    files, ignored = discover([tmp_path, tmp_path / "a.txt"])
    assert files == [(tmp_path / "a.txt").resolve()] and ignored == 1
    with pytest.raises(InputError, match="No path"):
        discover([])


def test_chunk_ids_depend_on_source_and_content() -> None:
    a = chunk_id("/docs/a.md", "text", 0)
    assert a == chunk_id("/docs/a.md", "text", 0)
    assert len({a, chunk_id("/docs/b.md", "text", 0), chunk_id("/docs/a.md", "text!", 0)}) == 3
    assert chunk_id("/docs/a.md", "text", 1) != a  # repeated text in one file


def test_offline_embedder_separates_related_from_unrelated() -> None:
    embedder = OnnxMiniLM()
    a, b, c = embedder.embed(
        [
            "How do I descale my kettle?",
            "Boil vinegar and water in the kettle to remove limescale.",
            "Quarterly revenue rose by five percent.",
        ]
    )
    assert len(a) == 384 and math.isclose(sum(x * x for x in a), 1.0, rel_tol=1e-4)

    def cos(u: list[float], v: list[float]) -> float:
        return sum(x * y for x, y in zip(u, v, strict=True))

    assert cos(a, b) > 0.45 and cos(a, c) < 0.15
    # Long texts are truncated at 256 tokens, not rejected.
    assert len(embedder.embed_query("word " * 2000)) == 384


class FixedRetriever:
    def __init__(self, chunks: list[RetrievedChunk], min_score: float) -> None:
        self.chunks = chunks
        self.min_score = min_score

    def relevant(self, question: str) -> list[RetrievedChunk]:
        return [c for c in self.chunks if c.score >= self.min_score]


def chunk(source: str, score: float, text: str = "Some passage text.") -> RetrievedChunk:
    return RetrievedChunk(id=source, text=text, score=score, source=source, chunk=0)


def fake_ctx(tmp_path: Path, chunks: list[RetrievedChunk], **extras: Any) -> ChainContext:
    settings = app_settings(make_app_dir(tmp_path / "app"))
    model = GenericFakeChatModel(messages=iter([AIMessage(content="The answer [1].")]))
    retriever = FixedRetriever(chunks, settings.retrieval.min_score)
    return ChainContext(
        settings=settings,
        model=model,
        count_tokens=lambda text: len(text.split()),
        n_ctx=2048,
        extras={"retriever": retriever, **extras},
    )


def test_below_threshold_answers_dont_know_without_the_model(tmp_path: Path) -> None:
    ctx = fake_ctx(tmp_path, [chunk("a.md", 0.05), chunk("b.md", 0.1)])
    out = rag_chain(ctx).invoke({"question": "Who won in 1998?"})
    assert out == {"answer": NO_ANSWER, "sources": []}
    # The fake model's only answer is still unused.
    assert ctx.model.invoke("x").content == "The answer [1]."


def test_retrieval_guard_decides_which_chunks_reach_the_model(tmp_path: Path) -> None:
    seen: list[list[str]] = []

    def guard(chunks: list[RetrievedChunk]) -> list[RetrievedChunk]:
        seen.append([c.source for c in chunks])
        return [c for c in chunks if c.source != "evil.md"]

    ctx = fake_ctx(tmp_path, [chunk("evil.md", 0.9), chunk("good.md", 0.8)], retrieval_guard=guard)
    out = rag_chain(ctx).invoke({"question": "How?"})
    assert seen == [["evil.md", "good.md"]]
    assert [s["source"] for s in out["sources"]] == ["good.md"]
    assert out["answer"] == "The answer [1]."

    blocked = fake_ctx(tmp_path, [chunk("evil.md", 0.9)], retrieval_guard=lambda chunks: [])
    assert rag_chain(blocked).invoke({"question": "How?"})["answer"] == NO_ANSWER


def test_context_is_trimmed_to_fit_the_model(tmp_path: Path) -> None:
    long = " ".join(["word"] * 1000)
    ctx = fake_ctx(tmp_path, [chunk("a.md", 0.9, long), chunk("b.md", 0.8, long)])
    out = rag_chain(ctx).invoke({"question": "How?"})
    # 2048 - 24 answer tokens - the prompt's overhead fits one 1,000-word chunk, not two.
    assert [s["source"] for s in out["sources"]] == ["a.md"]
    assert out["sources"][0]["snippet"].endswith("…")
    assert len(out["sources"][0]["snippet"]) <= ctx.settings.retrieval.snippet_chars


def test_blank_question_is_an_input_error(tmp_path: Path) -> None:
    ctx = fake_ctx(tmp_path, [])
    with pytest.raises(InputError, match="The question is blank"):
        rag_chain(ctx).invoke({"question": "  \n"})
