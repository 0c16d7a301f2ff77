"""Retrieval: offline embeddings, the Chroma store (embedded or server), document ingestion.

chromadb, onnxruntime, tokenizers and pypdf come with the ``rag`` extra and are imported only
when used, so the rest of langdeploy works without them.
"""

from langdeploy.retrieval.embeddings import Embedder, build_embedder
from langdeploy.retrieval.ingest import Ingestor, IngestReport, ingest
from langdeploy.retrieval.retriever import Retriever
from langdeploy.retrieval.store import ChromaStore, RetrievedChunk, collection_exists

__all__ = [
    "ChromaStore",
    "Embedder",
    "IngestReport",
    "Ingestor",
    "RetrievedChunk",
    "Retriever",
    "build_embedder",
    "collection_exists",
    "ingest",
]
