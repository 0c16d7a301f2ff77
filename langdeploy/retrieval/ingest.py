"""Ingest files into the Chroma collection: idempotent, batched, interrupt-safe.

Chunk ids are a hash of the file's path and the chunk's text, so:

- a file whose bytes (and the chunking settings) are unchanged is skipped before it is even
  parsed, and nothing is embedded;
- a changed file is re-split; chunks whose text survived keep their id and their vector, new text
  is embedded and added, and chunks that are gone are deleted;
- ``prune`` deletes the chunks of files under the given paths that no longer exist.

Every chunk carries its file's signature and chunk count. A file counts as unchanged only when
all of its chunks carry the current signature and none is missing, so an ingest interrupted
half-way through a file is redone for that file on the next run. Old chunks of a changed file are
deleted only after its new chunks are written, so a question never finds the file missing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langdeploy.errors import InputError
from langdeploy.retrieval import loaders
from langdeploy.retrieval.embeddings import Embedder, build_embedder
from langdeploy.retrieval.store import ChromaStore
from langdeploy.settings import Settings

# Bookkeeping keys: rewriting them is not an "update" a user cares about.
BOOKKEEPING = ("file_sig", "n_chunks")


@dataclass
class IngestReport:
    """What an ingest did, for the closing summary."""

    collection: str
    location: str
    files: int = 0
    files_new: int = 0
    files_changed: int = 0
    files_unchanged: int = 0
    files_empty: int = 0
    files_pruned: int = 0
    ignored: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    embedded: int = 0
    total_chunks: int = 0

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["failed"] = [{"path": p, "error": e} for p, e in self.failed]
        return out


# Progress callback: (event, path, total). Events: "start" (total files), "file" (one done).
ProgressFn = Callable[[str, Path | None, int], None]


def _no_progress(event: str, path: Path | None, total: int) -> None:
    return None


@dataclass
class _Plan:
    """What one file needs: chunks to embed, metadata to rewrite, ids to delete."""

    path: Path
    new_ids: list[str] = field(default_factory=list)
    new_texts: list[str] = field(default_factory=list)
    new_metas: list[dict[str, Any]] = field(default_factory=list)
    kept_ids: list[str] = field(default_factory=list)
    kept_metas: list[dict[str, Any]] = field(default_factory=list)
    stale_ids: list[str] = field(default_factory=list)


def discover(paths: Sequence[Path]) -> tuple[list[Path], int]:
    """Supported files under ``paths`` (sorted, no duplicates) and how many others were ignored.

    A path that does not exist, or input with no supported file at all, is an error before
    anything is written.
    """
    if not paths:
        raise InputError("No path to ingest was given.", fix="Name files or directories.")
    files: dict[Path, None] = {}
    ignored = 0
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise InputError(f"{raw}: no such file or directory.", fix="Check the path.")
        if path.is_file():
            # A file named explicitly is always tried, so an unsupported one is reported.
            files[path.resolve()] = None
            continue
        for child in sorted(path.rglob("*")):
            if any(part.startswith(".") for part in child.relative_to(path).parts):
                continue  # hidden files and directories (.git, .langdeploy/chroma)
            if child.is_file():
                if loaders.supported(child):
                    files[child.resolve()] = None
                else:
                    ignored += 1
    if not files:
        listing = ", ".join(str(p) for p in paths)
        raise InputError(
            f"No supported files in {listing} ({ignored} other files ignored).",
            fix=f"Ingest files ending in {', '.join(loaders.SUFFIXES)}.",
        )
    return list(files), ignored


def chunk_id(source: str, text: str, occurrence: int) -> str:
    """Stable id from the source and the content; ``occurrence`` tells repeated text apart."""
    digest = hashlib.sha256(f"{source}\x00{occurrence}\x00{text}".encode()).hexdigest()
    return digest[:32]


class Ingestor:
    """Ingests paths into the configured collection."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder | None = None,
        store: ChromaStore | None = None,
    ) -> None:
        self.settings = settings
        r = settings.retrieval
        self.embedder = embedder or build_embedder(r)
        self.store = store or ChromaStore(settings, self.embedder.id)
        self.batch_size = r.batch_size
        from langchain_text_splitters import Language, RecursiveCharacterTextSplitter

        self._splitter = RecursiveCharacterTextSplitter(
            chunk_size=r.chunk_size, chunk_overlap=r.chunk_overlap
        )
        self._md_splitter = RecursiveCharacterTextSplitter.from_language(
            Language.MARKDOWN, chunk_size=r.chunk_size, chunk_overlap=r.chunk_overlap
        )
        self._config_sig = f"{r.chunk_size}/{r.chunk_overlap}"

    def run(
        self, paths: Sequence[Path], *, prune: bool = False, progress: ProgressFn | None = None
    ) -> IngestReport:
        progress = progress or _no_progress
        files, ignored = discover(paths)
        report = IngestReport(
            collection=self.store.name, location=self.store.location, ignored=ignored
        )
        progress("start", None, len(files))
        pending: list[_Plan] = []
        for path in files:
            plan = self._plan(path, report)
            if plan is None:
                progress("file", path, len(files))
                continue
            pending.append(plan)
            if sum(len(p.new_ids) for p in pending) >= self.batch_size:
                self._flush(pending, report, progress, len(files))
                pending = []
        self._flush(pending, report, progress, len(files))
        if prune:
            self._prune(paths, {str(p) for p in files}, report)
        report.total_chunks = self.store.count()
        return report

    # One file: decide what to do without writing anything yet.

    def _plan(self, path: Path, report: IngestReport) -> _Plan | None:
        report.files += 1
        source = str(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            report.failed.append((source, f"cannot be read ({exc.strerror or exc})"))
            return None
        sig = hashlib.sha256(data + self._config_sig.encode()).hexdigest()[:32]
        existing_ids, existing_metas = self.store.get(source=source)
        if existing_ids and all(
            m.get("file_sig") == sig and m.get("n_chunks") == len(existing_ids)
            for m in existing_metas
        ):
            report.files_unchanged += 1
            report.unchanged += len(existing_ids)
            return None
        try:
            sections = loaders.load(path, data)
        except loaders.UnreadableFile as exc:
            # Its old chunks, if any, stay: a damaged copy must not erase a good ingest.
            report.failed.append((source, exc.message.removeprefix(f"{path}: ")))
            return None
        chunks = self._split(path, sections)
        plan = _Plan(path)
        old = dict(zip(existing_ids, existing_metas, strict=True))
        seen: dict[str, int] = {}
        for index, (text, extra) in enumerate(chunks):
            occurrence = seen.get(text, 0)
            seen[text] = occurrence + 1
            cid = chunk_id(source, text, occurrence)
            meta: dict[str, Any] = {
                "source": source,
                "name": path.name,
                "chunk": index,
                "n_chunks": len(chunks),
                "file_sig": sig,
                **extra,
            }
            if cid in old:
                before = {k: v for k, v in old[cid].items() if k not in BOOKKEEPING}
                after = {k: v for k, v in meta.items() if k not in BOOKKEEPING}
                if before == after:
                    report.unchanged += 1
                else:
                    report.updated += 1
                plan.kept_ids.append(cid)
                plan.kept_metas.append(meta)
            else:
                plan.new_ids.append(cid)
                plan.new_texts.append(text)
                plan.new_metas.append(meta)
        keep = set(plan.new_ids) | set(plan.kept_ids)
        plan.stale_ids = [i for i in existing_ids if i not in keep]
        if not chunks:
            report.files_empty += 1
        elif existing_ids:
            report.files_changed += 1
        else:
            report.files_new += 1
        return plan

    def _split(
        self, path: Path, sections: Iterable[loaders.Section]
    ) -> list[tuple[str, dict[str, Any]]]:
        splitter = (
            self._md_splitter if path.suffix.lower() in (".md", ".markdown") else self._splitter
        )
        out = []
        for section in sections:
            for text in splitter.split_text(section.text):
                if text.strip():
                    out.append((text, dict(section.metadata)))
        return out

    # Writes: new vectors first, then metadata, then deletions (see the module docstring).

    def _flush(
        self, plans: list[_Plan], report: IngestReport, progress: ProgressFn, total: int
    ) -> None:
        ids = [i for p in plans for i in p.new_ids]
        texts = [t for p in plans for t in p.new_texts]
        metas = [m for p in plans for m in p.new_metas]
        for start in range(0, len(ids), self.batch_size):
            end = start + self.batch_size
            vectors = self.embedder.embed(texts[start:end])
            self.store.upsert(ids[start:end], vectors, texts[start:end], metas[start:end])
            report.embedded += len(vectors)
            report.added += len(vectors)
        for plan in plans:
            if plan.kept_ids:
                self.store.update_metadata(plan.kept_ids, plan.kept_metas)
            if plan.stale_ids:
                self.store.delete(plan.stale_ids)
                report.removed += len(plan.stale_ids)
            progress("file", plan.path, total)

    def _prune(self, paths: Sequence[Path], seen: set[str], report: IngestReport) -> None:
        roots = [Path(p).expanduser().resolve() for p in paths]
        ids, metas = self.store.get()
        gone: dict[str, list[str]] = {}
        for cid, meta in zip(ids, metas, strict=True):
            source = str(meta.get("source", ""))
            if source in seen or not _under(Path(source), roots):
                continue
            gone.setdefault(source, []).append(cid)
        for chunk_ids in gone.values():
            self.store.delete(chunk_ids)
            report.removed += len(chunk_ids)
        report.files_pruned = len(gone)


def _under(path: Path, roots: list[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def ingest(
    settings: Settings,
    paths: Sequence[Path],
    *,
    prune: bool = False,
    progress: ProgressFn | None = None,
    embedder: Embedder | None = None,
) -> IngestReport:
    """Ingest ``paths`` into ``settings.retrieval.collection``; see :class:`Ingestor`."""
    return Ingestor(settings, embedder=embedder).run(paths, prune=prune, progress=progress)
