"""The API server's Kubernetes manifests (``deploy/kubernetes``) render with kustomize,
validate against the official schemas, and describe a server that works: N replicas on
PostgreSQL from a Secret, a ReadWriteMany persistent path, probes on ``/api/health`` that
a deployed (token-requiring) server answers without a token."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from serverproc import ServerProcess, kill_processes_under

kubernetes_validate = pytest.importorskip("kubernetes_validate")

DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "kubernetes"
KUBE_VERSION = "1.32.0"


def render(overlay: str) -> list[dict[str, Any]]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    out = subprocess.run(["kubectl", "kustomize", str(DEPLOY / overlay)], capture_output=True,
                         text=True, check=True, timeout=60).stdout  # fmt: skip
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in docs}


@pytest.mark.parametrize("overlay", ["base", "with-postgres"])
def test_manifests_render_and_validate(overlay: str) -> None:
    docs = render(overlay)
    for doc in docs:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        assert doc["metadata"].get("namespace", "skyhop") == "skyhop"
    ingress = yaml.safe_load((DEPLOY / "base" / "ingress.yaml").read_text())
    kubernetes_validate.validate(ingress, KUBE_VERSION, strict=True)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "PersistentVolumeClaim", "Secret"} <= kinds
    if overlay == "with-postgres":
        assert "StatefulSet" in kinds


def test_deployment_is_replicated_on_a_shared_volume_with_health_probes() -> None:
    docs = by_kind(render("base"))
    deployment, service, pvc = docs["Deployment"], docs["Service"], docs["PersistentVolumeClaim"]
    assert deployment["spec"]["replicas"] >= 2
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["SKYHOP_DB_URL"]["valueFrom"]["secretKeyRef"] == {"name": "skyhop-server",
                                                                 "key": "SKYHOP_DB_URL"}  # fmt: skip
    assert "SKYHOP_DB_URL" in docs["Secret"]["stringData"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    mount = container["volumeMounts"][0]
    assert mount["mountPath"] == env["SKYHOP_PERSISTENT_PATH"]["value"]
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    port = container["ports"][0]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/api/health", "port": port["name"]}
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    assert "--deploy" in container["command"] and str(port["containerPort"]) in container["command"]


def test_the_probe_path_answers_without_a_token_on_a_deployed_server(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "srv", args=("--deploy",)).start()
    try:
        assert httpx.get(server.endpoint + "/api/health", timeout=10).status_code == 200
        assert httpx.get(server.endpoint + "/api/status", timeout=10).status_code == 401
    finally:
        server.stop()
        kill_processes_under(tmp_path / "srv")
