"""The rendered command and settings really start the app, and its probe paths answer.

No container engine or cluster runs here, so the test takes the container's command and the
environment the manifests give it (the Kubernetes ConfigMap, the VM's EnvironmentFile), runs that
with this checkout on loopback, and polls the probe paths the way the kubelet would.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.deploy.conftest import find, kustomize

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _serve_and_probe(args: list[str], env: dict[str, str], cwd: Path, port: int) -> list[int]:
    """Start the app, return the /readyz codes seen until it is ready; /healthz must be 200."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("LANGDEPLOY_")}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from langdeploy.cli import main; main()", *args],
        env={**base, **env, "PYTHONPATH": str(REPO)},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    readyz: list[int] = []
    try:
        deadline = time.monotonic() + 180
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            while time.monotonic() < deadline:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                try:
                    health = client.get("/healthz")
                    ready = client.get("/readyz")
                except httpx.TransportError:
                    time.sleep(0.3)
                    continue
                assert health.status_code == 200  # liveness: up while the model loads
                readyz.append(ready.status_code)
                if ready.status_code == 200:
                    return readyz
                time.sleep(0.3)
        raise AssertionError(f"/readyz never turned 200: {readyz}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _swap_port(args: list[str], port: int) -> list[str]:
    # The manifests use port 8000; on a shared machine the test takes a free one.
    return [str(port) if a == "8000" else a for a in args]


def test_kubernetes_command_and_configmap_start_the_app(
    app_dir: Path, render_cli: Callable[..., Path], tmp_path: Path
) -> None:
    docs = kustomize(render_cli(app_dir, "k8s") / "overlays" / "cpu")
    container = find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    env = dict(find(docs, "ConfigMap")["data"])
    port = _free_port()
    env["LANGDEPLOY_SERVER__PORT"] = str(port)
    assert container["command"][0] == "langdeploy"
    codes = _serve_and_probe(_swap_port(container["command"][1:], port), env, tmp_path, port)
    assert codes[-1] == 200
    assert set(codes) <= {200, 503}  # loading answers 503, never an error


def test_vm_unit_and_environment_file_start_the_app(
    app_dir: Path, render_cli: Callable[..., Path], tmp_path: Path
) -> None:
    out = render_cli(app_dir, "vm")
    env: dict[str, str] = {}
    for line in (out / "demo.env").read_text().splitlines():
        [assignment] = shlex.split(line)  # quoting as systemd's EnvironmentFile reads it
        key, _, value = assignment.partition("=")
        env[key] = value
    unit = (out / "demo.service").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    args = shlex.split(exec_start.removeprefix("ExecStart="))
    assert args[0] == "/opt/demo/venv/bin/langdeploy"
    port = _free_port()
    args = _swap_port(args[1:], port)
    # The unit's app directory exists on the VM only; here the app's own directory stands in.
    args[args.index("--app-dir") + 1] = str(app_dir)
    codes = _serve_and_probe(args, env, tmp_path, port)
    assert codes[-1] == 200
