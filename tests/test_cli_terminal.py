"""The CLI as a person meets it: in a pseudo-terminal 80 columns wide (pexpect), where rich
sizes its tables to the terminal and colours its output."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pexpect

from langdeploy.errors import ConfigError, sentence

REPO = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def terminal(*args: str, cwd: Path, columns: int = 80) -> tuple[int, str]:
    """Run `langdeploy ARGS` in a pty of ``columns`` columns; its exit status and its screen
    output without colour codes."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    env["TERM"] = "xterm-256color"
    # This checkout's langdeploy, whatever the venv's editable install points at.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    child = pexpect.spawn(
        sys.executable,
        ["-m", "langdeploy.cli", *args],
        cwd=str(cwd),
        env=env,
        dimensions=(50, columns),
        encoding="utf-8",
        timeout=300,
    )
    output = child.read()
    child.close()
    assert child.exitstatus is not None, f"killed by signal {child.signalstatus}"
    return child.exitstatus, ANSI.sub("", output).replace("\r\n", "\n")


def first_cells(table: str) -> list[str]:
    """The first column's cells of a rich table (lines that start with a border)."""
    cells = []
    for line in table.splitlines():
        if line.startswith("│"):
            cell = line.split("│")[1].strip()
            if cell:
                cells.append(cell)
    return cells


def test_bad_option_value_is_a_usage_error_without_traceback(empty_dir: Path) -> None:
    status, out = terminal("serve", "--port", "99999", cwd=empty_dir)
    assert status == 2, out
    assert "Invalid settings:" in out and "--port (server.port): got 99999" in out
    assert "<= 65535" in out and "Traceback" not in out
    assert "Fix the option's value" in out
    # Each line of the message is a whole sentence.
    assert "<= 65535)." in out
    status, out = terminal("serve", "--model", "", cwd=empty_dir)
    assert status == 2 and "--model (model.name): got ''" in out and "Traceback" not in out


def test_names_are_never_cut_at_80_columns(empty_dir: Path) -> None:
    for args in (("models", "list"), ("guards", "list"), ("templates", "list")):
        # The names, as this CLI process registers them (plugins included).
        status, out = terminal(*args, "--json", cwd=empty_dir, columns=400)
        assert status == 0, out
        names = [item["name"] for item in json.loads(out)]
        assert names
        status, out = terminal(*args, cwd=empty_dir)
        assert status == 0, out
        assert max(len(line) for line in out.splitlines()) <= 80, out
        cells = first_cells(out)
        for name in names:
            assert name in cells, f"{' '.join(args)}: {name!r} is cut or missing:\n{out}"
        assert not [c for c in cells if c.endswith("…")], out


def test_templates_list_promises_what_new_writes(tmp_path: Path) -> None:
    status, out = terminal("templates", "list", "--json", cwd=tmp_path, columns=200)
    assert status == 0, out
    promises = {t["name"]: t["includes"] for t in json.loads(out)}
    for name in ("chat", "summarize"):
        deploy = next(line for line in promises[name] if line.startswith("deploy/"))
        promised = sorted(re.search(r"\(([^)]*)\)", deploy).group(1).split(", "))  # type: ignore[union-attr]
        status, out = terminal("new", f"app_{name}", "--template", name, cwd=tmp_path)
        assert status == 0, out
        written = sorted(p.name for p in (tmp_path / f"app_{name}" / "deploy").iterdir())
        assert written == promised, (deploy, written)
        # Its note says how to get the rest, in whole sentences.
        assert "deploy/vm was not rendered" in out and ". Then run:" in out


def test_messages_do_not_run_into_their_fix() -> None:
    # A message that ends with a quoted error gets its full stop before the fix.
    exc = ConfigError("Could not read settings from x.toml: line 1, column 5", fix="Fix the file.")
    assert str(exc) == "Could not read settings from x.toml: line 1, column 5. Fix the file."
    assert str(ConfigError("Done.", fix="Next.")) == "Done. Next."
    assert sentence("(allowed: >= 1)") == "(allowed: >= 1)."


def test_ingest_draws_its_progress_bar_within_80_columns(tmp_path: Path) -> None:
    from tests.rag.conftest import make_app_dir, write_corpus

    app_dir = make_app_dir(tmp_path / "app")
    docs = write_corpus(tmp_path / "docs")
    status, out = terminal("ingest", str(docs), "--app-dir", str(app_dir), cwd=tmp_path)
    assert status == 0, out
    assert "5/5 files" in out  # the bar, redrawn in place as files are done
    # Every redraw fits the terminal: a wider one would wrap and leave broken lines behind.
    frames = [frame for line in out.split("\n") for frame in line.split("\r")]
    assert max(len(frame.rstrip()) for frame in frames) <= 80, out
    assert "files:  5 (5 new, 0 changed, 0 unchanged, 0 failed)" in out
