"""The Chroma store: embedded persistent (default) or a Chroma server shared by replicas.

Collections are created without an embedding function and always get vectors from our
:class:`~langdeploy.retrieval.embeddings.Embedder`, so Chroma never downloads a model. The
embedder's id is kept in the collection's metadata: querying a collection in another vector
space would return nonsense, so that is refused with a clear error instead.

Embedded Chroma keeps its index in the memory of the process that opened it, so another process
writing the same directory (an ingest while the app serves) is not seen reliably: use server
mode for that.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from langdeploy.errors import (
    ConfigError,
    LangdeployError,
    MissingDependencyError,
    ServiceUnavailable,
)
from langdeploy.settings import RetrievalSettings, Settings

EMBEDDER_KEY = "langdeploy:embedder"
F = TypeVar("F", bound=Callable[..., Any])
# Chroma caps how many records one call may carry; stay well below it.
MAX_PAGE = 1000


@dataclass
class RetrievedChunk:
    """One chunk a query found, with its cosine similarity to the question."""

    id: str
    text: str
    score: float
    source: str
    chunk: int
    metadata: dict[str, Any] = field(default_factory=dict)


def store_path(settings: Settings) -> Path:
    """The embedded store's directory; a relative path is under the app directory (or cwd)."""
    path = settings.retrieval.path
    if path.is_absolute():
        return path
    base = settings.app.dir if settings.app.dir is not None else Path.cwd()
    return (base / path).resolve()


def _chromadb() -> Any:
    try:
        import chromadb
    except ImportError:
        raise MissingDependencyError("chromadb", "rag") from None
    return chromadb


def describe_location(settings: Settings) -> str:
    r = settings.retrieval
    if r.mode == "server":
        return f"{'https' if r.ssl else 'http'}://{r.host}:{r.port}"
    return str(store_path(settings))


def open_client(settings: Settings) -> Any:
    """A Chroma client for the configured mode (telemetry off)."""
    chromadb = _chromadb()
    from chromadb.config import Settings as ChromaSettings

    r: RetrievalSettings = settings.retrieval
    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if r.mode == "server":
        headers: dict[str, str] = {}
        if r.auth_token is not None:
            token = r.auth_token.get_secret_value()
            headers[r.auth_header] = (
                f"Bearer {token}" if r.auth_header == "Authorization" else token
            )
        try:
            return chromadb.HttpClient(
                host=r.host, port=r.port, ssl=r.ssl, headers=headers, settings=chroma_settings
            )
        except Exception as exc:  # chromadb raises ValueError/ConnectError/... on a dead server
            raise ServiceUnavailable(
                f"The Chroma server at {describe_location(settings)} did not answer: {exc}",
                retry_after=5,
                fix="Start it (chroma run --path DIR --port PORT) or fix retrieval.host/port/ssl.",
            ) from None
    path = store_path(settings)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"Cannot create the Chroma directory {path}: {exc}.",
            fix="Set retrieval.path (LANGDEPLOY_RETRIEVAL__PATH) to a writable directory.",
        ) from None
    return chromadb.PersistentClient(path=str(path), settings=chroma_settings)


def collection_exists(settings: Settings) -> bool:
    """Whether the configured collection exists, without creating the store or the collection."""
    if settings.retrieval.mode == "embedded" and not store_path(settings).is_dir():
        return False
    client = open_client(settings)
    names = {getattr(c, "name", c) for c in client.list_collections()}
    return settings.retrieval.collection in names


def _guarded(method: F) -> F:
    """Turn a Chroma failure (server gone, disk error) into a 503 that names the store."""

    @functools.wraps(method)
    def wrapper(self: ChromaStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except LangdeployError:
            raise
        except Exception as exc:
            raise ServiceUnavailable(
                f"The Chroma store at {self.location} failed: {type(exc).__name__}: {exc}",
                retry_after=5,
                fix="Check that the Chroma server is up (retrieval.host/port) or that "
                "retrieval.path is readable and writable.",
            ) from None

    return wrapper  # type: ignore[return-value]


class ChromaStore:
    """One collection, opened lazily; safe to share between threads."""

    def __init__(self, settings: Settings, embedder_id: str, *, create: bool = True) -> None:
        self.settings = settings
        self.name = settings.retrieval.collection
        self.embedder_id = embedder_id
        self.create = create
        self._lock = threading.Lock()
        self._collection: Any = None

    @property
    def location(self) -> str:
        return describe_location(self.settings)

    @property
    def collection(self) -> Any:
        with self._lock:
            # A missing collection is not cached: an ingest may create it while the app runs.
            if self._collection is None:
                self._collection = self._open()
            return self._collection

    def _open(self) -> Any:
        client = open_client(self.settings)
        try:
            if self.create:
                collection = client.get_or_create_collection(
                    self.name,
                    embedding_function=None,
                    configuration={"hnsw": {"space": "cosine"}},
                    metadata={EMBEDDER_KEY: self.embedder_id},
                )
            else:
                collection = client.get_collection(self.name, embedding_function=None)
        except LangdeployError:
            raise
        except Exception as exc:
            if not self.create and "not exist" in str(exc).lower():
                return None
            raise ServiceUnavailable(
                f"Could not open the Chroma collection {self.name!r} at {self.location}: {exc}",
                retry_after=5,
                fix="Check that the store is reachable and readable.",
            ) from None
        stored = (collection.metadata or {}).get(EMBEDDER_KEY)
        if stored and stored != self.embedder_id:
            raise ConfigError(
                f"The collection {self.name!r} at {self.location} holds vectors from the embedder "
                f"{stored!r}, but settings use {self.embedder_id!r}.",
                fix="Switch retrieval.embedder back, or ingest into another retrieval.collection.",
            )
        return collection

    @_guarded
    def count(self) -> int:
        collection = self.collection
        return 0 if collection is None else int(collection.count())

    @_guarded
    def get(self, **where: Any) -> tuple[list[str], list[dict[str, Any]]]:
        """Ids and metadata of every chunk that matches ``where`` (paged)."""
        collection = self.collection
        if collection is None:
            return [], []
        ids: list[str] = []
        metas: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = collection.get(
                where=where or None, include=["metadatas"], limit=MAX_PAGE, offset=offset
            )
            ids.extend(page["ids"])
            metas.extend(dict(m or {}) for m in page["metadatas"])
            if len(page["ids"]) < MAX_PAGE:
                return ids, metas
            offset += MAX_PAGE

    @_guarded
    def upsert(
        self,
        ids: Sequence[str],
        embeddings: Sequence[Sequence[float]],
        documents: Sequence[str],
        metadatas: Sequence[dict[str, Any]],
    ) -> None:
        for start in range(0, len(ids), MAX_PAGE):
            end = start + MAX_PAGE
            self.collection.upsert(
                ids=list(ids[start:end]),
                embeddings=[list(e) for e in embeddings[start:end]],
                documents=list(documents[start:end]),
                metadatas=list(metadatas[start:end]),
            )

    @_guarded
    def update_metadata(self, ids: Sequence[str], metadatas: Sequence[dict[str, Any]]) -> None:
        for start in range(0, len(ids), MAX_PAGE):
            end = start + MAX_PAGE
            self.collection.update(ids=list(ids[start:end]), metadatas=list(metadatas[start:end]))

    @_guarded
    def delete(self, ids: Sequence[str]) -> None:
        for batch in _pages(ids):
            self.collection.delete(ids=batch)

    @_guarded
    def query(self, embedding: Sequence[float], k: int) -> list[RetrievedChunk]:
        collection = self.collection
        if collection is None:
            return []
        result = collection.query(
            query_embeddings=[list(embedding)],
            n_results=k,
            include=["documents", "metadatas", "distances"],
        )
        chunks = []
        for id_, text, meta, distance in zip(
            result["ids"][0],
            result["documents"][0],
            result["metadatas"][0],
            result["distances"][0],
            strict=True,
        ):
            meta = dict(meta or {})
            chunks.append(
                RetrievedChunk(
                    id=id_,
                    text=text or "",
                    # Chroma's cosine distance is 1 - cosine similarity.
                    score=round(1.0 - float(distance), 4),
                    source=str(meta.get("source", "")),
                    chunk=int(meta.get("chunk", 0)),
                    metadata=meta,
                )
            )
        return chunks


def _pages(ids: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(ids), MAX_PAGE):
        yield list(ids[start : start + MAX_PAGE])
