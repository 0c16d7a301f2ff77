"""`langdeploy upgrade`: re-apply a newer template to an app without losing the user's edits.

`langdeploy new` keeps what it rendered in ``.langdeploy-template/`` (the answers and a pristine
copy of every file). An upgrade renders the template again with the same answers and, file by
file, merges three versions: the pristine copy (base), the app's file (ours) and the new render
(theirs). A file the user did not edit takes the new version; a file the template did not change
keeps the user's; a file both changed is merged line by line with ``git merge-file``, and
overlapping changes are left as conflict markers and reported. deploy/ is not touched: it comes
from the settings (``langdeploy deploy render``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langdeploy import __version__
from langdeploy.errors import ConfigError, LangdeployError
from langdeploy.templates.layers import render_app_files, template_vars
from langdeploy.templates.registry import template_registry

STATE_DIR = ".langdeploy-template"
ANSWERS = "answers.json"
BASE = "base"


@dataclass
class UpgradeReport:
    """What an upgrade did, file by file."""

    updated: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    from_version: str = ""
    to_version: str = __version__

    @property
    def changed(self) -> bool:
        return bool(self.updated or self.added or self.merged or self.conflicts or self.removed)


def write_state(root: Path, answers: dict[str, Any], files: dict[str, str]) -> None:
    """Record the answers and the pristine render inside the app (under ``root``)."""
    state = root / STATE_DIR
    if state.exists():
        shutil.rmtree(state)
    (state / BASE).mkdir(parents=True)
    (state / ANSWERS).write_text(json.dumps(answers, indent=2) + "\n", encoding="utf-8")
    for rel, text in files.items():
        path = state / BASE / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def read_answers(app_dir: Path) -> dict[str, Any]:
    path = app_dir / STATE_DIR / ANSWERS
    if not path.is_file():
        raise ConfigError(
            f"{app_dir} has no {STATE_DIR}/{ANSWERS}, so langdeploy does not know which template "
            "made it.",
            fix="Run upgrade in an app that `langdeploy new` created (and keep its "
            f"{STATE_DIR}/ folder under version control).",
        )
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}.", fix="Restore the file.") from None
    return data


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.is_file() else None


def merge3(ours: str, base: str, theirs: str) -> tuple[str, bool]:
    """A line-based three-way merge with ``git merge-file``; returns (text, had_conflicts)."""
    git = shutil.which("git")
    if git is None:
        raise LangdeployError(
            "Merging a file that both you and the template changed needs git (git merge-file).",
            fix="Install git, then run langdeploy upgrade again.",
        )
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for label, text in (("ours", ours), ("base", base), ("theirs", theirs)):
            p = Path(tmp) / label
            p.write_text(text, encoding="utf-8")
            paths.append(str(p))
        done = subprocess.run(
            [git, "merge-file", "-p", "-L", "yours", "-L", "template before", "-L",
             "template now", *paths],
            capture_output=True,
            text=True,
        )  # fmt: skip
    # Exit status: 0 clean, >0 the number of conflicts, <0 (255 here) an error.
    if done.returncode < 0 or done.returncode >= 128:
        raise LangdeployError(f"git merge-file failed: {done.stderr.strip()}", fix="See above.")
    return done.stdout, done.returncode > 0


def upgrade_app(app_dir: Path, *, template_name: str | None = None) -> UpgradeReport:
    """Re-render the app's template with its answers and merge it into the app."""
    app_dir = app_dir.resolve()
    answers = read_answers(app_dir)
    template = template_registry.get(template_name or answers["template"])
    variables = template_vars(template, answers["name"], answers["model"])
    theirs_files = render_app_files(template, variables)
    base_dir = app_dir / STATE_DIR / BASE
    base_files = {
        str(p.relative_to(base_dir)): p.read_text(encoding="utf-8")
        for p in sorted(base_dir.rglob("*"))
        if p.is_file()
    }
    report = UpgradeReport(from_version=str(answers.get("langdeploy_version", "?")))
    writes: dict[str, str] = {}
    deletes: list[str] = []
    for rel in sorted(set(theirs_files) | set(base_files)):
        base, theirs = base_files.get(rel), theirs_files.get(rel)
        ours = _read(app_dir / rel)
        if theirs == base or ours == theirs:
            continue  # the template did not change it, or the app already has the new text
        if theirs is None:
            # The template dropped the file: remove it only if the user never edited it.
            if ours is not None and ours == base:
                deletes.append(rel)
                report.removed.append(rel)
            elif ours is not None:
                report.kept.append(rel)
            continue
        if ours is None:
            if base is None:
                writes[rel] = theirs
                report.added.append(rel)
            else:
                report.kept.append(rel)  # the user deleted it: respect that
            continue
        if ours == base or (base is None and ours == ""):
            writes[rel] = theirs
            report.updated.append(rel)
            continue
        merged, conflict = merge3(ours, base or "", theirs)
        writes[rel] = merged
        (report.conflicts if conflict else report.merged).append(rel)

    # Everything is decided before the first write.
    for rel, text in writes.items():
        path = app_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for rel in deletes:
        (app_dir / rel).unlink()
    write_state(app_dir, {**answers, "template": template.name, "langdeploy_version": __version__},
                theirs_files)  # fmt: skip
    return report
