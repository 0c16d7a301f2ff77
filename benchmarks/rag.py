"""RAG benchmark: retrieval quality and ingestion speed, printed and written as JSON.

    PYTHONPATH=. python benchmarks/rag.py [--out benchmarks/results/rag.json] [--chunks 1000]

Retrieval: the corpus in benchmarks/data/rag is ingested into a fresh embedded Chroma with the
default offline embedder; each question's answer sits in exactly one document. hit@1 and hit@4
count the questions whose document is the top hit, or among the top four. Off-topic questions
show how the relevance threshold (retrieval.min_score) separates them from real ones.

Ingestion: chunks/s for the corpus and for a generated set of about --chunks chunks, and the
time of a re-ingest of unchanged files as a fraction of the first ingest (target: at most 10%).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from langdeploy.retrieval.embeddings import OnnxMiniLM  # noqa: E402
from langdeploy.retrieval.ingest import Ingestor  # noqa: E402
from langdeploy.retrieval.retriever import Retriever  # noqa: E402
from langdeploy.settings import Settings, load_settings  # noqa: E402

DATA = ROOT / "benchmarks" / "data" / "rag"


def settings_for(store: Path, collection: str) -> Settings:
    app_dir = store / "app"
    app_dir.mkdir(parents=True, exist_ok=True)
    return load_settings(
        app_dir=app_dir, retrieval={"path": str(store / "chroma"), "collection": collection}
    )


def timed_ingest(settings: Settings, embedder: OnnxMiniLM, paths: list[Path]) -> dict[str, Any]:
    start = time.perf_counter()
    report = Ingestor(settings, embedder=embedder).run(paths)
    seconds = time.perf_counter() - start
    return {
        "seconds": round(seconds, 3),
        "files": report.files,
        "chunks_embedded": report.embedded,
        "chunks_total": report.total_chunks,
        "chunks_per_s": round(report.embedded / seconds, 1) if report.embedded else None,
        "failed": len(report.failed),
    }


def generate_corpus(target: Path, chunks: int, chunk_size: int) -> None:
    """Files of varied sentences (from the corpus, shuffled, with numbers) of ~4 chunks each."""
    sentences = [
        s.strip() + "."
        for doc in sorted((DATA / "docs").glob("*.md"))
        for s in doc.read_text().replace("\n", " ").split(". ")
        if len(s.strip()) > 20 and not s.startswith("#")
    ]
    rng = random.Random(7)
    target.mkdir(parents=True)
    per_file = 4
    for n in range(chunks // per_file):
        paragraphs = []
        for _ in range(per_file):
            words = 0
            para = []
            # Just under one chunk of text per paragraph, so each file splits into ~4 chunks.
            while words * 6 < chunk_size * 0.85:
                sentence = f"{rng.choice(sentences)} (ref {n}-{rng.randint(0, 99999)})"
                para.append(sentence)
                words += len(sentence.split())
            paragraphs.append(" ".join(para))
        (target / f"generated-{n:04d}.md").write_text("\n\n".join(paragraphs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "rag.json")
    parser.add_argument("--chunks", type=int, default=1000, help="Size of the large ingest.")
    args = parser.parse_args()

    questions = [json.loads(line) for line in (DATA / "questions.jsonl").read_text().splitlines()]
    embedder = OnnxMiniLM()
    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            # Embedding is CPU-bound: a busy machine (load above the CPU count) runs slower.
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "embedder": embedder.id,
    }
    with tempfile.TemporaryDirectory(prefix="langdeploy-rag-bench-") as tmp:
        store = Path(tmp)
        settings = settings_for(store, "corpus")
        docs = DATA / "docs"
        first = timed_ingest(settings, embedder, [docs])
        again = timed_ingest(settings, embedder, [docs])
        results["corpus_ingest"] = first
        results["corpus_reingest"] = {
            **again,
            "fraction_of_first": round(again["seconds"] / first["seconds"], 4),
        }

        retriever = Retriever(settings, embedder=embedder)
        k = 4
        hits1 = hits4 = 0
        top_on: list[float] = []
        top_off: list[float] = []
        misses = []
        for q in questions:
            found = retriever.search(q["question"], k)
            names = [Path(c.source).name for c in found]
            if q["document"] is None:
                top_off.append(found[0].score)
                continue
            top_on.append(found[0].score)
            hits1 += names[:1] == [q["document"]]
            hits4 += q["document"] in names[:k]
            if names[:1] != [q["document"]]:
                misses.append({"question": q["question"], "expected": q["document"], "got": names})
        on_topic = len(top_on)
        min_score = settings.retrieval.min_score
        results["retrieval"] = {
            "questions": on_topic,
            "hit@1": round(hits1 / on_topic, 3),
            "hit@4": round(hits4 / on_topic, 3),
            "misses_at_1": misses,
            "min_score": min_score,
            "top1_score_on_topic": {
                "min": round(min(top_on), 3),
                "median": round(statistics.median(top_on), 3),
            },
            "top1_score_off_topic": {
                "max": round(max(top_off), 3),
                "median": round(statistics.median(top_off), 3),
            },
            "on_topic_answered": round(sum(s >= min_score for s in top_on) / on_topic, 3),
            "off_topic_refused": round(sum(s < min_score for s in top_off) / len(top_off), 3),
        }

        big = store / "generated"
        generate_corpus(big, args.chunks, settings.retrieval.chunk_size)
        big_settings = settings_for(store, "generated")
        first_big = timed_ingest(big_settings, embedder, [big])
        again_big = timed_ingest(big_settings, embedder, [big])
        results["large_ingest"] = first_big
        results["large_reingest"] = {
            **again_big,
            "fraction_of_first": round(again_big["seconds"] / first_big["seconds"], 4),
        }

    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    r = results["retrieval"]
    print(
        f"retrieval: hit@1 {r['hit@1']:.3f}  hit@4 {r['hit@4']:.3f}  ({r['questions']} questions)"
    )
    print(
        f"threshold {r['min_score']}: on-topic answered {r['on_topic_answered']:.0%}, "
        f"off-topic refused {r['off_topic_refused']:.0%} (top-1 on-topic min "
        f"{r['top1_score_on_topic']['min']}, off-topic max {r['top1_score_off_topic']['max']})"
    )
    for name in ("corpus", "large"):
        f, a = results[f"{name}_ingest"], results[f"{name}_reingest"]
        print(
            f"{name} ingest: {f['chunks_embedded']} chunks in {f['seconds']:.2f}s = "
            f"{f['chunks_per_s']} chunks/s; re-ingest {a['seconds']:.2f}s = "
            f"{a['fraction_of_first']:.1%} of the first"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
