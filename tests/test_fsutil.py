"""The atomic-write helper: a target is replaced whole or left as it was, with no temp left over."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from langdeploy.fsutil import atomic_binary, atomic_dir, atomic_path, atomic_write_text, write_tree


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_text_replaces_and_is_readable(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "report.json"
    atomic_write_text(target, "one")
    atomic_write_text(target, "twø")
    assert target.read_text(encoding="utf-8") == "twø"
    assert _mode(target) == 0o644  # not mkstemp's private 0600
    assert [p.name for p in target.parent.iterdir()] == ["report.json"]


def test_an_error_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "model.gguf"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_binary(target) as fh:
        fh.write(b"half")
        raise RuntimeError("download stopped")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.gguf"]


def test_atomic_path_for_writers_that_take_a_name(tmp_path: Path) -> None:
    target = tmp_path / "m.gguf"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_bytes(b"weights")
        assert not target.exists()
    assert target.read_bytes() == b"weights"
    assert [p.name for p in tmp_path.iterdir()] == ["m.gguf"]


def test_dir_appears_whole(tmp_path: Path) -> None:
    dest = tmp_path / "deploy" / "k8s"
    with atomic_dir(dest) as staging:
        write_tree(staging, {"a.yaml": "a", "base/b.yaml": "b"})
        assert not dest.exists()
    assert (dest / "base" / "b.yaml").read_text() == "b"
    assert _mode(dest) == 0o755
    assert [p.name for p in dest.parent.iterdir()] == ["k8s"]


def test_dir_error_leaves_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "app"
    with pytest.raises(RuntimeError), atomic_dir(dest) as staging:
        write_tree(staging, {"a.txt": "a"})
        raise RuntimeError("render failed")
    assert list(tmp_path.iterdir()) == []


def test_dir_into_an_empty_dir_and_not_a_full_one(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    with atomic_dir(dest) as staging:
        write_tree(staging, {"a.txt": "a"})
    assert (dest / "a.txt").read_text() == "a"
    with pytest.raises(OSError), atomic_dir(dest) as staging:
        write_tree(staging, {"b.txt": "b"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert sorted(p.name for p in dest.iterdir()) == ["a.txt"]


def test_dir_merge_replaces_namesakes_and_keeps_the_rest(tmp_path: Path) -> None:
    dest = tmp_path / "app"
    write_tree(dest, {"mine.txt": "mine", "README.md": "old", "chains/app.py": "old"})
    with atomic_dir(dest, merge=True) as staging:
        write_tree(staging, {"README.md": "new", "chains/app.py": "new", "new.txt": "n"})
    assert (dest / "mine.txt").read_text() == "mine"
    assert (dest / "README.md").read_text() == "new"
    assert (dest / "chains" / "app.py").read_text() == "new"
    assert (dest / "new.txt").read_text() == "n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app"]
