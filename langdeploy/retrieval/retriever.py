"""Search the collection: embed the question, take the top k, keep those above the threshold."""

from __future__ import annotations

from langdeploy.retrieval.embeddings import Embedder, build_embedder
from langdeploy.retrieval.store import ChromaStore, RetrievedChunk
from langdeploy.settings import Settings


class Retriever:
    """Built from settings; opens the store and loads the embedder on first use."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder | None = None,
        store: ChromaStore | None = None,
    ) -> None:
        r = settings.retrieval
        self.embedder = embedder or build_embedder(r)
        # create=False: asking a question must not create an empty collection.
        self.store = store or ChromaStore(settings, self.embedder.id, create=False)
        self.top_k = r.top_k
        self.min_score = r.min_score

    def search(self, question: str, k: int | None = None) -> list[RetrievedChunk]:
        """The top ``k`` chunks by cosine similarity, best first, whatever their score."""
        if self.store.count() == 0:
            return []
        return self.store.query(self.embedder.embed_query(question), k or self.top_k)

    def relevant(self, question: str, k: int | None = None) -> list[RetrievedChunk]:
        """The top ``k`` chunks whose score reaches ``min_score``."""
        return [c for c in self.search(question, k) if c.score >= self.min_score]
