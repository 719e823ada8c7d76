"""The fake API server behaves like kube-apiserver for what skyhop uses, and ``kubectl``
agrees: apply, ``get -l``, logs, exec with stdin and an exit code, label and field
selectors, schema validation, authentication, watches from a resourceVersion."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakekube_proc import FakeCluster

POD = """apiVersion: v1
kind: Pod
metadata: {name: kc1, labels: {app: demo, tier: web}}
spec:
  containers:
  - {name: main, image: python:3.12-slim, command: [sh, -c, "echo from-kc1; sleep 300"]}
"""


def kubectl(
    kubeconfig: Path, *args: str, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "--context", "alpha", *args],
                          capture_output=True, text=True, input=input, timeout=60)  # fmt: skip


def wait_running(cluster: FakeCluster, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pod = cluster.api("GET", f"/api/v1/namespaces/skyhop/pods/{name}").json()
        if pod.get("status", {}).get("phase") == "Running":
            return dict(pod)
        time.sleep(0.1)
    raise AssertionError(f"pod {name} did not run: {pod}")


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_apply_get_logs_exec(
    fake_clusters: dict[str, FakeCluster], kubeconfig: Path, tmp_path: Path
) -> None:
    alpha = fake_clusters["alpha"]
    (tmp_path / "pod.yaml").write_text(POD)
    try:
        # --validate=false: the fake serves no /openapi documents (it validates server-side).
        applied = kubectl(kubeconfig, "apply", "--validate=false", "-f", str(tmp_path / "pod.yaml"))
        assert applied.returncode == 0 and "pod/kc1 created" in applied.stdout, applied
        wait_running(alpha, "kc1")
        listed = kubectl(
            kubeconfig, "get", "pods", "-l", "app=demo,tier in (web,api)", "-o", "name"
        )
        assert listed.stdout.split() == ["pod/kc1"], listed
        none = kubectl(kubeconfig, "get", "pods", "-l", "app!=demo", "-o", "name")
        assert none.returncode == 0 and none.stdout.strip() == "", none
        logs = kubectl(kubeconfig, "logs", "kc1")
        assert logs.stdout == "from-kc1\n", logs
        done = kubectl(kubeconfig, "exec", "-i", "kc1", "--", "sh", "-c", "cat; echo err >&2; exit 3",
                       input="hello-stdin\n")  # fmt: skip
        assert done.returncode == 3 and done.stdout == "hello-stdin\n", done
        assert "err" in done.stderr and "exit code 3" in done.stderr, done
        as_json = json.loads(kubectl(kubeconfig, "get", "pod", "kc1", "-o", "json").stdout)
        assert as_json["status"]["podIP"].startswith("10.214.")
    finally:
        kubectl(kubeconfig, "delete", "pod", "kc1", "--wait=false")


def test_bad_manifest_is_invalid_naming_the_field(fake_clusters: dict[str, FakeCluster]) -> None:
    alpha = fake_clusters["alpha"]
    bad = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad"},
           "spec": {"containers": [{"name": "c", "image": "x", "resources": {"limit": {}}}]}}  # fmt: skip
    answer = alpha.api("POST", "/api/v1/namespaces/skyhop/pods", json=bad)
    assert answer.status_code == 422 and answer.json()["reason"] == "Invalid"
    assert (
        "spec.containers.0.resources" in answer.json()["message"]
        and "limit" in answer.json()["message"]
    )
    upper = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "Bad_Name"},
             "spec": {"containers": [{"name": "c", "image": "x"}]}}  # fmt: skip
    assert alpha.api("POST", "/api/v1/namespaces/skyhop/pods", json=upper).status_code == 422
    missing = alpha.api("POST", "/api/v1/namespaces/nowhere/pods", json=upper)
    assert missing.status_code == 404 and missing.json()["reason"] == "NotFound"


def test_wrong_token_is_unauthorized(fake_clusters: dict[str, FakeCluster]) -> None:
    alpha = fake_clusters["alpha"]
    answer = httpx.get(alpha.url + "/api/v1/nodes", verify=alpha.ssl_context(),
                       headers={"Authorization": "Bearer wrong"})  # fmt: skip
    assert answer.status_code == 401 and answer.json()["reason"] == "Unauthorized"


def test_selectors_watch_and_unschedulable_message(fake_clusters: dict[str, FakeCluster]) -> None:
    alpha = fake_clusters["alpha"]
    listing = alpha.api("GET", "/api/v1/namespaces/skyhop/pods").json()
    version = listing["metadata"]["resourceVersion"]
    huge = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "huge", "labels": {"w": "1"}},
            "spec": {"containers": [{"name": "c", "image": "x",
                                     "resources": {"requests": {"cpu": "3", "memory": "1Gi"}}}]}}  # fmt: skip
    assert alpha.api("POST", "/api/v1/namespaces/skyhop/pods", json=huge).status_code == 201
    try:
        events = []
        with httpx.stream("GET", alpha.url + "/api/v1/namespaces/skyhop/pods", verify=alpha.ssl_context(),
                          headers={"Authorization": f"Bearer {alpha.token}"}, timeout=10,
                          params={"watch": "true", "resourceVersion": version,
                                  "labelSelector": "w=1", "timeoutSeconds": "15"}) as stream:  # fmt: skip
            # Until the scheduler has said why (under load that can take a while).
            for line in stream.iter_lines():
                events.append(json.loads(line))
                if events[-1]["object"].get("status", {}).get("conditions"):
                    break
        assert [e["type"] for e in events][:2] == ["ADDED", "MODIFIED"], events
        cond = events[-1]["object"]["status"]["conditions"][0]
        assert (cond["type"], cond["status"], cond["reason"]) == (
            "PodScheduled",
            "False",
            "Unschedulable",
        )
        assert cond["message"].startswith("0/2 nodes are available: 2 Insufficient cpu.")
        pending = alpha.api("GET", "/api/v1/namespaces/skyhop/pods",
                            params={"fieldSelector": "status.phase=Pending"}).json()["items"]  # fmt: skip
        assert [p["metadata"]["name"] for p in pending] == ["huge"]
    finally:
        alpha.api("DELETE", "/api/v1/namespaces/skyhop/pods/huge")
