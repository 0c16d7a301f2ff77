"""Kubernetes: `kubectl kustomize` builds every overlay (and every overlay with every component);
each object passes kubernetes-validate --strict for the target version; the security defaults
are checked on the built objects."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from langdeploy.deploy.checks import tools
from langdeploy.deploy.checks.tools import VALIDATOR_EXTRA, CheckResult
from langdeploy.deploy.context import is_secret_name

DEFAULT_KUBERNETES_VERSION = "1.30.0"


def _kustomize_kind(path: Path) -> str | None:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        return "Kustomization"  # let kustomize report the syntax error
    if not isinstance(data, dict):
        return None
    return str(data.get("kind") or "Kustomization")


def kustomize_build(kubectl: str, target: Path) -> tuple[list[dict[str, Any]] | None, str]:
    proc = tools.run([kubectl, "kustomize", str(target)])
    if proc.returncode != 0:
        return None, tools.short(proc.stderr or proc.stdout)
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
    kubectl = tools.find_tool("kubectl")
    if kubectl is None:
        return [
            tools.missing(
                "kubectl kustomize", str(root), "kubectl", "install kubectl (with Kustomize)"
            )
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
                    tools.missing(
                        "kubernetes-validate", label, "kubernetes-validate", VALIDATOR_EXTRA
                    )
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
                    tools.short("\n".join(problems))
                    if problems
                    else "non-root, read-only root, "
                    "no capabilities, seccomp, probes, resources, no secrets in ConfigMaps",
                )
            )
    return results
