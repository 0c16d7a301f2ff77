"""Every template, end to end as a user runs it: generate, install, run the app's own tests
(which call the bundled model over REST), then `langdeploy serve` in the app, /{chain}/invoke
and /{chain}/stream.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from langdeploy.cli import app
from langdeploy.templates import template_registry
from tests.servers import free_port, wait_http
from tests.sse import parse_sse

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
runner = CliRunner()

# One request per template that the served chain must answer with 200.
REQUESTS: dict[str, dict[str, Any]] = {
    "chat": {"messages": [{"type": "human", "content": "Hello!"}]},
    "summarize": {"text": "The council voted to build a library by the river. It opens in May."},
    "extract": {"text": "Hi, this is Jane Doe from Acme Corp, jane@acme.com."},
    "rag": {"question": "When does the library open on Saturdays?"},
}
# Room for an answer of 50+ tokens on /stream (the app's tests keep answers short).
STREAM_MAX_TOKENS = 64
# One eval example: every template's chain takes one text (a message, a document, a question).
EVAL_INPUT = "The council voted to build a library by the river. It opens in May."


def app_env(max_tokens: int) -> dict[str, str]:
    """The worktree's langdeploy first, short greedy answers, nothing from the caller's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANGDEPLOY_")}
    env["PYTHONPATH"] = str(REPO)
    env.update(
        LANGDEPLOY_MODEL__MAX_TOKENS=str(max_tokens),
        LANGDEPLOY_MODEL__TEMPERATURE="0",
        LANGDEPLOY_MODEL__SEED="7",
    )
    return env


@pytest.fixture
def installed(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """Generate the app with the CLI and pip-install it (editable, no deps: langdeploy and
    llama-cpp-python are already here); uninstall it afterwards."""
    template: str = request.param
    name = f"gen_{template}_app"
    app_dir = tmp_path / name
    result = runner.invoke(app, ["new", name, "--template", template, "--dir", str(app_dir)])
    assert result.exit_code == 0, result.output
    pip = [sys.executable, "-m", "pip"]
    done = subprocess.run(
        [*pip, "install", "--quiet", "--no-deps", "--no-build-isolation", "-e", str(app_dir)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    try:
        yield app_dir
    finally:
        subprocess.run([*pip, "uninstall", "--quiet", "--yes", name], capture_output=True)


def serve(app_dir: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """`langdeploy serve` from inside the app directory, as the README says."""
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "langdeploy"), "serve", "--port", str(port)],
        cwd=app_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return proc, f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out or ""


def add_readme_chain(app_dir: Path) -> str:
    """Follow the README's "Add a chain": its function into chains/app.py, its name into config."""
    readme = (app_dir / "README.md").read_text()
    section = readme.split("## Add a chain", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, flags=re.S)
    toml_line = re.search(r"```toml\n\s*(chains = .*?)\n\s*```", section, flags=re.S)
    assert code is not None and toml_line is not None, "the README lost its example"
    function = "\n".join(line[3:] for line in code.group(1).splitlines())
    module = app_dir / "chains" / "app.py"
    module.write_text(module.read_text() + "\n\n" + function)
    config = app_dir / "langdeploy.toml"
    config.write_text(re.sub(r"^chains = .*$", toml_line.group(1), config.read_text(), flags=re.M))
    assert tomllib.loads(config.read_text())["server"]["chains"][-1] == "shout"
    return "shout"


def langdeploy(app_dir: Path, env: dict[str, str], *args: str, stdin: str = "") -> str:
    """A langdeploy command run inside the app directory; it must succeed."""
    done = subprocess.run(
        [str(BIN / "langdeploy"), *args],
        cwd=app_dir,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert done.returncode == 0, f"langdeploy {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout


def check_app_commands(app_dir: Path, chain: str, env: dict[str, str]) -> None:
    """guards and eval see the app: its own guard from guards.yaml, its own chain."""
    listed = json.loads(langdeploy(app_dir, env, "guards", "list", "--json"))
    assert "banned_words" in {g["name"] for g in listed}
    texts = ["Tell me about project-x.", "What time is it?"]
    stdin = "".join(json.dumps({"text": t}) + "\n" for t in texts)
    blocked, passed = map(
        json.loads, langdeploy(app_dir, env, "guards", "scan", stdin=stdin).splitlines()
    )
    assert not blocked["allowed"] and blocked["violations"][0]["guard"] == "banned_words"
    assert passed["allowed"]

    data = app_dir / "mini.jsonl"
    data.write_text(json.dumps({"input": EVAL_INPUT, "expected": "x"}) + "\n")
    out = app_dir / "eval-out"
    langdeploy(app_dir, env, "eval", str(data), "--chain", chain, "-m", "smollm2-135m",
               "--max-tokens", "16", "--out", str(out), "--no-cache")  # fmt: skip
    results = json.loads((out / "results.json").read_text())
    assert results["chain"] == chain
    assert results["unavailable"]["guards"] is None  # the app's output guards were found


def streamed_text(data: Any) -> str:
    """The generated text in one data event: a message chunk's content, or a structured
    chunk's text fields (rag's answer, brief's summary and headline, an extract's fields)."""
    if isinstance(data, dict) and str(data.get("type", "")).endswith("MessageChunk"):
        return str(data.get("content", ""))
    if isinstance(data, dict):
        return "".join(v for v in data.values() if isinstance(v, str))
    return data if isinstance(data, str) else ""


def check_stream(url: str, template: str, chain: str) -> int:
    """/<chain>/stream sends the answer token by token: several data events with text, whatever
    the app's extra step does, and what that step adds. Returns the count of data events."""
    body = {
        "input": REQUESTS[template],
        "config": {"configurable": {"max_tokens": STREAM_MAX_TOKENS}},
    }
    response = httpx.post(f"{url}/{chain}/stream", json=body, timeout=180)
    assert response.status_code == 200, response.text
    events = parse_sse(response.text)
    assert events[-1][0] == "end" and "error" not in {e for e, _ in events}, events
    data = [d for e, d in events if e == "data"]
    with_text = [d for d in data if streamed_text(d)]
    assert len(with_text) > 1, data
    if template == "rag":
        # citations adds the list after the answer (output guards may release held-back answer
        # text after it).
        (cited,) = [d["cited"] for d in data if "cited" in d]
        assert isinstance(cited, list), data
    elif template == "extract":
        assert set(data[-1]) == {"name", "email", "company"}, data  # the validated Contact
    elif template == "summarize":
        keys = [k for d in with_text for k in d]
        assert keys[0] == "summary" and "headline" in keys, keys  # the summary first
    else:
        assert all(d["type"] == "AIMessageChunk" for d in data), data
    return len(data)


def check_bench(app_dir: Path, url: str, chain: str, env: dict[str, str]) -> None:
    """`langdeploy bench --chain <the app's chain>` needs no other flag: its input comes from the
    chain's spec (inherited from the built-in chain it extends)."""
    out = app_dir / "bench.json"
    langdeploy(app_dir, env, "bench", "--url", url, "--chain", chain, "--requests", "2",
               "--concurrency", "1", "--out", str(out))  # fmt: skip
    data = json.loads(out.read_text())
    assert data["summary"]["errors"] == 0, data
    assert all(r["ttft_s"] is not None and r["tokens"] >= 1 for r in data["requests"]), data


@pytest.mark.slow
@pytest.mark.parametrize("installed", sorted(REQUESTS), indirect=True)
def test_generated_app_tests_pass_and_it_serves(installed: Path) -> None:
    app_dir = installed
    spec = template_registry.get(app_dir.name.split("_")[1])
    env = app_env(spec.test_max_tokens)

    ruff = shutil.which("ruff", path=str(BIN))
    if ruff is not None:
        lint = subprocess.run([ruff, "check", "."], cwd=app_dir, capture_output=True, text=True)
        assert lint.returncode == 0, lint.stdout

    # The app's own tests: they start `langdeploy serve` and call it over REST.
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"],
        cwd=app_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert " passed" in tests.stdout and "failed" not in tests.stdout
    assert "skipped" not in tests.stdout, tests.stdout

    if spec.name == "rag":
        # The app's tests used a temporary store; the app's own store is made as a user makes it.
        assert not (app_dir / ".langdeploy" / "chroma").exists()
        langdeploy(app_dir, env, "ingest", "docs/")
    check_app_commands(app_dir, spec.chain, env)

    extra = add_readme_chain(app_dir) if spec.name == "chat" else None
    proc, url = serve(app_dir, env)
    try:
        wait_http(f"{url}/readyz", timeout=180, proc=proc)
        body = {"input": REQUESTS[spec.name]}
        response = httpx.post(f"{url}/{spec.chain}/invoke", json=body, timeout=180)
        assert response.status_code == 200, response.text
        n_events = check_stream(url, spec.name, spec.chain)
        print(f"/{spec.chain}/stream: {n_events} data events")
        check_bench(app_dir, url, spec.chain, env)
        if extra is not None:
            shouted = httpx.post(f"{url}/{extra}/invoke", json=body, timeout=180)
            assert shouted.status_code == 200, shouted.text
            output = shouted.json()["output"]
            assert isinstance(output, str) and output == output.upper()
    finally:
        log = stop(proc)
    assert "Traceback" not in log, log
