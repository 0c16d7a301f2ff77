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

from pathlib import Path

from langdeploy.deploy.checks.files import (
    check_caddyfile,
    check_compose,
    check_dockerfile,
    check_unit,
    check_units_in_user_data,
    check_user_data,
    cloud_config_schema,
)
from langdeploy.deploy.checks.kubernetes import (
    DEFAULT_KUBERNETES_VERSION,
    check_kustomize,
    kustomize_build,
    security_problems,
)
from langdeploy.deploy.checks.tools import VALIDATOR_EXTRA, CheckResult, Status, find_tool

# The checks live in deploy/checks/ (one module per kind of file); these names stay importable
# from here.
__all__ = [
    "DEFAULT_KUBERNETES_VERSION",
    "VALIDATOR_EXTRA",
    "CheckResult",
    "Status",
    "check_caddyfile",
    "check_compose",
    "check_dockerfile",
    "check_kustomize",
    "check_unit",
    "check_units_in_user_data",
    "check_user_data",
    "cloud_config_schema",
    "find_tool",
    "kustomize_build",
    "security_problems",
    "validate_dir",
]


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
