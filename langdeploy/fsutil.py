"""Atomic writes: a reader sees the old file (or folder) or the new one, never half of one.

A file is written to a temporary file in the same directory (so the rename never crosses a file
system), flushed and fsynced, then renamed over the target; on any error the temporary file is
removed and the target is untouched. A folder is rendered into a temporary folder beside the
target, its files fsynced, then renamed into place (the target must not exist or be empty),
or, with ``merge=True`` into a folder that has files, moved in file by file.

Layer 1: nothing of langdeploy but errors.py may be imported here.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

# mkstemp and mkdtemp make private entries (0600, 0700); what langdeploy writes (reports, apps,
# manifests, model files) is meant to be read by others, as a plain write would leave it.
FILE_MODE = 0o644
DIR_MODE = 0o755


def _fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable; a no-op where directories cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the rename itself is done
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with path.open("rb") as fh:
        os.fsync(fh.fileno())


@contextmanager
def _temp_beside(path: Path) -> Iterator[tuple[int, Path]]:
    """An open temporary file next to ``path``; removed unless it was renamed away."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    tmp = Path(name)
    try:
        yield fd, tmp
    finally:
        tmp.unlink(missing_ok=True)


def _commit(tmp: Path, path: Path) -> None:
    os.chmod(tmp, FILE_MODE)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


@contextmanager
def atomic_binary(path: Path) -> Iterator[BinaryIO]:
    """Write ``path`` through a binary file object; it replaces ``path`` when the block ends
    without an error (a download that fails halfway leaves no partial file)."""
    with _temp_beside(path) as (fd, tmp):
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        _commit(tmp, path)


def atomic_write_text(path: Path, text: str, *, encoding: str = "utf-8") -> None:
    """Replace ``path`` with ``text`` atomically."""
    with atomic_binary(path) as fh:
        fh.write(text.encode(encoding))


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path``, for a writer that only takes a file name; what it
    wrote there is fsynced and renamed onto ``path`` when the block ends without an error."""
    with _temp_beside(path) as (fd, tmp):
        os.close(fd)
        yield tmp
        _fsync_file(tmp)
        _commit(tmp, path)


def write_tree(root: Path, files: Mapping[str, str]) -> None:
    """Write ``files`` (relative path -> text) under ``root``, making folders as needed."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@contextmanager
def atomic_dir(dest: Path, *, merge: bool = False) -> Iterator[Path]:
    """An empty folder beside ``dest`` to fill; when the block ends without an error it becomes
    ``dest``. ``dest`` must not exist or be empty, unless ``merge``: then the folder's files
    replace their namesakes in ``dest`` one by one and its other files stay. On an error the
    temporary folder is removed and ``dest`` is untouched."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        yield staging
        for path in staging.rglob("*"):
            if path.is_file() and not path.is_symlink():
                _fsync_file(path)
        staging.chmod(DIR_MODE)
        if merge and dest.is_dir() and any(dest.iterdir()):
            _merge_into(staging, dest)
        else:
            if dest.is_dir():
                dest.rmdir()  # empty (rmdir refuses otherwise, and dest stays as it was)
            os.replace(staging, dest)
        _fsync_dir(dest.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _merge_into(staging: Path, dest: Path) -> None:
    """Every file of ``staging`` replaces its namesake in ``dest``; other files stay."""
    for source in sorted(staging.rglob("*")):
        target = dest / source.relative_to(staging)
        if source.is_dir():
            if target.exists() and not target.is_dir():
                target.unlink()
            target.mkdir(parents=True, exist_ok=True)
        else:
            if target.is_dir():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
