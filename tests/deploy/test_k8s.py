"""Kubernetes: Kustomize base and overlays, built with kubectl and checked on the parsed objects."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from langdeploy.deploy.context import is_secret_name
from langdeploy.deploy.validate import security_problems, validate_dir
from tests.deploy.conftest import (
    find,
    kustomize,
    kustomize_with,
    make_app,
    run_cli,
    settings_from_env,
)

SHA = "a" * 64


def _container(deploy: dict[str, Any], name: str) -> dict[str, Any]:
    pod = deploy["spec"]["template"]["spec"]
    return next(c for c in pod["containers"] if c["name"] == name)


def _pod(deploy: dict[str, Any]) -> dict[str, Any]:
    return deploy["spec"]["template"]["spec"]


@pytest.fixture
def k8s_dir(app_dir: Path, render_cli: Callable[..., Path]) -> Path:
    return render_cli(app_dir, "k8s")


def test_cpu_overlay_keeps_the_field_failures_away(k8s_dir: Path) -> None:
    docs = kustomize(k8s_dir / "overlays" / "cpu")
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(
        [
            "ConfigMap",
            "Deployment",
            "HorizontalPodAutoscaler",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount",
        ]
    )
    deploy = find(docs, "Deployment", "demo")
    app = _container(deploy, "app")
    assert app["image"] == "registry.example.com/team/demo:1.0"
    assert app["command"] == ["langdeploy", "serve", "--host", "0.0.0.0", "--port", "8000"]

    # Probes: liveness never kills a pod that is still loading its model.
    startup, ready, live = app["startupProbe"], app["readinessProbe"], app["livenessProbe"]
    assert startup["httpGet"]["path"] == "/readyz"
    assert ready["httpGet"]["path"] == "/readyz"
    assert live["httpGet"]["path"] == "/healthz"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600

    # Resources.
    assert app["resources"]["requests"] == {"cpu": "1", "memory": "1Gi"}
    assert app["resources"]["limits"] == {"cpu": "2", "memory": "2Gi"}

    # Security context.
    sc, pod = app["securityContext"], _pod(deploy)
    assert sc["runAsNonRoot"] is True and pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False

    # /tmp is an emptyDir; API keys come from a Secret by reference only.
    mounts = {m["name"]: m for m in app["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["tmp"]["mountPath"] == "/tmp" and "emptyDir" in volumes["tmp"]
    assert volumes["secrets"]["secret"] == {
        "secretName": "demo-secrets",
        "optional": True,
        "defaultMode": 0o440,
    }
    assert mounts["secrets"]["readOnly"] is True
    assert not any(d["kind"] == "Secret" for d in docs)

    # Rollouts keep capacity; the bundled model is in the image, so no volume and no download.
    assert deploy["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert "initContainers" not in _pod(deploy)
    assert not any(d["kind"] == "PersistentVolumeClaim" for d in docs)

    # The ConfigMap comes from the settings, is what the pod reads, and holds no secrets.
    cm = find(docs, "ConfigMap")
    assert app["envFrom"] == [{"configMapRef": {"name": cm["metadata"]["name"]}}]
    data = cm["data"]
    assert data["LANGDEPLOY_MODEL__MAX_TOKENS"] == "128"
    assert data["LANGDEPLOY_MODEL__NAME"] == "smollm2-135m"
    assert data["LANGDEPLOY_SERVER__HOST"] == "0.0.0.0"
    # llama.cpp threads follow the CPU limit, not the node's core count.
    assert data["LANGDEPLOY_MODEL__N_THREADS"] == "2"
    assert all(key.startswith("LANGDEPLOY_") for key in data)
    assert not [key for key in data if is_secret_name(key)]

    hpa = find(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "demo"
    assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    pdb = find(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= _pod_labels(deploy).items()
    svc = find(docs, "Service", "demo")
    assert svc["spec"]["selector"].items() <= _pod_labels(deploy).items()
    netpol = find(docs, "NetworkPolicy", "demo")
    assert set(netpol["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert security_problems(docs) == []


def _pod_labels(deploy: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = deploy["spec"]["template"]["metadata"]["labels"]
    return labels


def test_gpu_overlay_runs_vllm_on_a_gpu_node_and_points_the_app_at_it(k8s_dir: Path) -> None:
    docs = kustomize(k8s_dir / "overlays" / "gpu")
    vllm = find(docs, "Deployment", "demo-vllm")
    pod = _pod(vllm)
    container = _container(vllm, "vllm")
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    shm = next(v for v in pod["volumes"] if v["name"] == "shm")
    assert shm["emptyDir"]["medium"] == "Memory"
    assert {"name": "shm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    # One replica that frees its GPU and ReadWriteOnce volume before the next starts.
    assert vllm["spec"]["strategy"] == {"type": "Recreate"}
    pvc = find(docs, "PersistentVolumeClaim", "demo-vllm-models")
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    # Weights are fetched once by the init container; the server itself never downloads.
    init = pod["initContainers"][0]
    assert "snapshot_download" in init["command"][-1]
    assert {"name": "HF_HUB_OFFLINE", "value": "1"} in container["env"]
    assert container["startupProbe"]["httpGet"]["path"] == "/health"

    data = find(docs, "ConfigMap")["data"]
    svc = find(docs, "Service", "demo-vllm")
    assert data["LANGDEPLOY_MODEL__BACKEND"] == "openai"
    assert data["LANGDEPLOY_MODEL__BASE_URL"] == f"http://{svc['metadata']['name']}:8000/v1"
    assert data["LANGDEPLOY_MODEL__NAME"] == "smollm2-135m"
    assert svc["spec"]["selector"].items() <= _pod_labels(vllm).items()
    assert security_problems(docs) == []


def test_chroma_and_ingress_components(k8s_dir: Path, tmp_path: Path) -> None:
    overlays = k8s_dir / "overlays"
    docs = kustomize_with(
        tmp_path / "mine", overlays / "cpu", overlays / "chroma", overlays / "ingress"
    )
    sts = find(docs, "StatefulSet", "demo-chroma")
    svc = find(docs, "Service", "demo-chroma")
    assert svc["spec"]["selector"].items() <= _pod_labels(sts).items()
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["accessModes"] == ["ReadWriteOnce"]
    data = find(docs, "ConfigMap")["data"]
    assert data["LANGDEPLOY_RETRIEVAL__HOST"] == "demo-chroma"
    assert data["LANGDEPLOY_RETRIEVAL__PORT"] == "8000"

    ingress = find(docs, "Ingress", "demo")
    notes = ingress["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(notes["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    assert int(notes["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 3600
    rule = ingress["spec"]["rules"][0]
    assert rule["host"] == "llm.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"]["name"] == "demo"
    assert ingress["spec"]["tls"][0]["hosts"] == ["llm.example.com"]
    assert security_problems(docs) == []


def test_root_kustomization_deploys_what_the_settings_ask(
    tmp_path: Path, render_cli: Callable[..., Path]
) -> None:
    app = make_app(
        tmp_path / "rag-app",
        """
        [server]
        chains = ["chat", "rag"]
        [deploy]
        name = "rag"
        """,
    )
    out = render_cli(app, "k8s", "--gpu")
    docs = kustomize(out)
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("StatefulSet", "rag-chroma") in kinds  # rag is served: Chroma comes along
    assert ("Deployment", "rag-vllm") in kinds  # --gpu: the GPU overlay is the default
    assert not any(kind == "Ingress" for kind, _ in kinds)  # no hostname, no Ingress
    data = find(docs, "ConfigMap")["data"]
    assert data["LANGDEPLOY_RETRIEVAL__HOST"] == "rag-chroma"
    assert data["LANGDEPLOY_MODEL__BACKEND"] == "openai"
    # The pod's settings load: every variable names a real field with a valid value.
    settings = settings_from_env(data, tmp_path / "pod")
    assert settings["retrieval"]["mode"] == "server"
    assert settings["retrieval"]["host"] == "rag-chroma"
    assert settings["model"]["base_url"] == data["LANGDEPLOY_MODEL__BASE_URL"]


def test_model_file_fills_a_shared_volume_once(
    tmp_path: Path, render_cli: Callable[..., Path]
) -> None:
    app = make_app(
        tmp_path / "file-app",
        f"""
        [model]
        name = "/data/models/tiny.gguf"
        [deploy]
        model_url = "https://models.example.com/tiny.gguf"
        model_sha256 = "{SHA}"
        """,
    )
    docs = kustomize(render_cli(app, "k8s") / "overlays" / "cpu")
    pvc = find(docs, "PersistentVolumeClaim", "langdeploy-models")
    # ReadWriteMany: replicas on any node mount it, so a rollout never waits on the volume.
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    deploy = find(docs, "Deployment", "langdeploy")
    pod = _pod(deploy)
    init = pod["initContainers"][0]
    assert init["command"] == [
        "langdeploy", "deploy", "fetch-model",
        "https://models.example.com/tiny.gguf", "/models/tiny.gguf", "--sha256", SHA,
    ]  # fmt: skip
    app_mounts = {m["name"]: m for m in _container(deploy, "app")["volumeMounts"]}
    assert app_mounts["models"] == {"name": "models", "mountPath": "/models", "readOnly": True}
    assert find(docs, "ConfigMap")["data"]["LANGDEPLOY_MODEL__NAME"] == "/models/tiny.gguf"
    netpol = find(docs, "NetworkPolicy", "langdeploy")
    assert {"port": 443, "protocol": "TCP"} in netpol["spec"]["egress"][-1]["ports"]
    assert security_problems(docs) == []

    # On the GPU overlay vLLM serves the model: the app's volume and fetch step are gone.
    gpu = kustomize(render_cli(app, "k8s", out=tmp_path / "gpu") / "overlays" / "gpu")
    claims = {d["metadata"]["name"] for d in gpu if d["kind"] == "PersistentVolumeClaim"}
    assert claims == {"langdeploy-vllm-models"}
    app_pod = _pod(find(gpu, "Deployment", "langdeploy"))
    assert "initContainers" not in app_pod
    assert "models" not in {v["name"] for v in app_pod["volumes"]}
    assert "models" not in {m["name"] for m in app_pod["containers"][0]["volumeMounts"]}
    assert find(gpu, "ConfigMap")["data"]["LANGDEPLOY_MODEL__BACKEND"] == "openai"


def test_read_write_once_volume_keeps_replicas_on_one_node(
    tmp_path: Path, render_cli: Callable[..., Path]
) -> None:
    app = make_app(
        tmp_path / "rwo-app",
        """
        [model]
        name = "/data/models/tiny.gguf"
        [deploy]
        model_url = "https://models.example.com/tiny.gguf"
        models_access_mode = "ReadWriteOnce"
        """,
    )
    docs = kustomize(render_cli(app, "k8s") / "overlays" / "cpu")
    affinity = _pod(find(docs, "Deployment"))["affinity"]
    term = affinity["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["topologyKey"] == "kubernetes.io/hostname"


def test_model_file_without_a_source_is_refused(tmp_path: Path) -> None:
    app = make_app(tmp_path / "nosrc", '[model]\nname = "/data/tiny.gguf"\n')
    result = run_cli("deploy", "render", "--target", "k8s", "--app-dir", str(app))
    assert result.exit_code == 1
    assert "deploy.model_url" in result.output
    assert not (app / "deploy").exists()


def test_validate_passes_every_build(k8s_dir: Path) -> None:
    results = validate_dir(k8s_dir, kubernetes_version="1.30.0")
    failed = [r for r in results if r.status == "fail"]
    assert failed == []
    built = {r.subject for r in results if r.check == "kubectl kustomize"}
    assert {
        ".",
        "base",
        "overlays/cpu",
        "overlays/gpu",
        "overlays/cpu + overlays/chroma",
        "overlays/gpu + overlays/ingress",
    } <= built
    assert {r.check for r in results} == {
        "kubectl kustomize",
        "kubernetes-validate",
        "security defaults",
    }


def test_validate_reports_schema_errors_crds_and_weakened_defaults(k8s_dir: Path) -> None:
    base = k8s_dir / "base"
    # A typo'd field, an unknown CRD, and a container that lost its probes and non-root setting.
    deployment = yaml.safe_load((base / "deployment.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["imagePullPolcy"] = "Always"
    del container["livenessProbe"]
    container["securityContext"]["readOnlyRootFilesystem"] = False
    (base / "deployment.yaml").write_text(yaml.safe_dump(deployment))
    (base / "servicemonitor.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "monitoring.coreos.com/v1",
                "kind": "ServiceMonitor",
                "metadata": {"name": "demo"},
                "spec": {"selector": {}, "endpoints": [{"port": "http"}]},
            }
        )
    )
    kust = yaml.safe_load((base / "kustomization.yaml").read_text())
    kust["resources"].append("servicemonitor.yaml")
    (base / "kustomization.yaml").write_text(yaml.safe_dump(kust))

    results = validate_dir(k8s_dir, kubernetes_version="1.30.0")
    schema_fail = [r for r in results if r.check == "kubernetes-validate" and r.status == "fail"]
    by_object = [r for r in schema_fail if r.subject.startswith("Deployment/")]
    assert by_object and all("imagePullPolcy" in r.detail for r in by_object)
    # Every build that contains it fails.
    failed_builds = {r.subject for r in schema_fail if r not in by_object}
    assert {".", "base", "overlays/cpu", "overlays/gpu", "overlays/cpu + overlays/chroma"} <= (
        failed_builds
    )
    skipped = [r for r in results if r.status == "skip"]
    assert skipped and all("monitoring.coreos.com/v1" in r.detail for r in skipped)
    security = [r for r in results if r.check == "security defaults" and r.status == "fail"]
    assert security
    assert "livenessProbe" in security[0].detail
    assert "writable root filesystem" in security[0].detail

    result = run_cli("deploy", "validate", str(k8s_dir))
    assert result.exit_code == 1
    assert "checks failed" in result.output


def test_startup_budget_follows_the_settings(
    tmp_path: Path, render_cli: Callable[..., Path]
) -> None:
    app = make_app(tmp_path / "slow", "[deploy]\nstartup_timeout_s = 1800\ncpu_limit = '3500m'\n")
    docs = kustomize(render_cli(app, "k8s") / "overlays" / "cpu")
    probe = _container(find(docs, "Deployment"), "app")["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 1800
    assert probe["failureThreshold"] == math.ceil(1800 / probe["periodSeconds"])
    assert find(docs, "ConfigMap")["data"]["LANGDEPLOY_MODEL__N_THREADS"] == "3"


def test_namespace_covers_what_overlays_and_components_add(
    tmp_path: Path, render_cli: Callable[..., Path]
) -> None:
    app = make_app(
        tmp_path / "ns-app",
        """
        [server]
        chains = ["chat", "rag"]
        [deploy]
        namespace = "llm"
        hostname = "a.example.com"
        """,
    )
    out = render_cli(app, "k8s", "--gpu")
    for build in (out, out / "overlays" / "cpu", out / "overlays" / "gpu"):
        docs = kustomize(build)
        assert {d["metadata"].get("namespace") for d in docs} == {"llm"}, build
    assert any(d["kind"] == "Ingress" for d in kustomize(out))


def test_validate_names_supported_kubernetes_versions(k8s_dir: Path) -> None:
    result = run_cli("deploy", "validate", str(k8s_dir), "--kubernetes-version", "1.12.0")
    assert result.exit_code == 1 and "1 of 1 checks failed" in result.output
    [row] = validate_dir(k8s_dir, kubernetes_version="1.12.0")
    assert row.status == "fail" and "no schemas for Kubernetes 1.12.0" in row.detail
    assert "--kubernetes-version" in row.detail


def test_read_only_many_volume_is_filled_by_you(
    tmp_path: Path, render_cli: Callable[..., Path]
) -> None:
    app = make_app(
        tmp_path / "rox-app",
        '[model]\nname = "/data/tiny.gguf"\n[deploy]\nmodels_access_mode = "ReadOnlyMany"\n',
    )
    docs = kustomize(render_cli(app, "k8s") / "overlays" / "cpu")
    assert find(docs, "PersistentVolumeClaim")["spec"]["accessModes"] == ["ReadOnlyMany"]
    assert "initContainers" not in _pod(find(docs, "Deployment"))  # nothing could write to it
    assert find(docs, "ConfigMap")["data"]["LANGDEPLOY_MODEL__NAME"] == "/models/tiny.gguf"
