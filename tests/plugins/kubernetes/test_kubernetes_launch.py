"""``skyhop launch --infra k8s`` end to end: the CLI, a real API server, the fake clusters.

The server (hypercorn on loopback, its own persistent path) has the kubernetes backend
configured with both fake contexts. Jobs run in the pods' network namespaces, so the pod
IPs the API reports are the addresses the job sees and the ranks talk over.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakekube_proc import FakeCluster
from serverproc import ServerProcess, kill_processes_under


@pytest.fixture(scope="module")
def k8s_server(
    kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    root = Path(tmp_path_factory.mktemp("k8s-server"))
    config = {"backends": {"kubernetes": {"kubeconfig": str(kubeconfig), "allowed_contexts": ["alpha", "beta"],
                             "unschedulable_timeout": 0.5, "provision_timeout": 60}}}  # fmt: skip
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    server = ServerProcess(root).start()
    try:
        yield server
    finally:
        server.stop()
        kill_processes_under(root)


def skyhop(
    server: ServerProcess, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "skyhop.cli", *args], env=server.env,
                          capture_output=True, text=True, timeout=180)  # fmt: skip
    if check and proc.returncode != 0:
        raise AssertionError(f"skyhop {' '.join(args)} exited {proc.returncode}:\n"
                             f"{proc.stdout}\n{proc.stderr}")  # fmt: skip
    return proc


def pods_of(cluster: FakeCluster, name: str) -> list[dict[str, Any]]:
    found = cluster.api("GET", "/api/v1/namespaces/skyhop/pods",
                        params={"labelSelector": f"skyhop.dev/cluster={name}"})  # fmt: skip
    return sorted(found.json()["items"], key=lambda p: p["metadata"]["labels"]["skyhop.dev/rank"])


def test_check_reports_each_context(k8s_server: ServerProcess) -> None:
    out = skyhop(k8s_server, "check").stdout
    lines = out.splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.strip().startswith("kubernetes:"))
    assert "enabled" in lines[at] and "disabled" not in lines[at], out
    assert lines[at + 1].strip() == "alpha: ok: 2 node(s), namespace skyhop", out
    assert lines[at + 2].strip() == "beta: ok: 2 node(s), namespace skyhop", out


def test_single_node_job_runs_in_its_pod_and_down_deletes_it(
    k8s_server: ServerProcess, fake_clusters: dict[str, FakeCluster]
) -> None:
    beta = fake_clusters["beta"]
    out = skyhop(k8s_server, "launch", "-y", "-c", "k1", "--infra", "k8s/beta",
                 "echo host=$(hostname) ips=$SKYHOP_NODE_IPS").stdout  # fmt: skip
    (pod,) = pods_of(beta, "k1")
    assert pod["metadata"]["name"] == "k1-head" and pod["status"]["phase"] == "Running"
    assert f"host=k1-head ips={pod['status']['podIP']}" in out, out
    labels = pod["metadata"]["labels"]
    assert labels["skyhop.dev/rank"] == "0" and labels["skyhop.dev/user"]
    services = beta.api("GET", "/api/v1/namespaces/skyhop/services",
                        params={"labelSelector": "skyhop.dev/cluster=k1"}).json()["items"]  # fmt: skip
    assert [s["spec"]["clusterIP"] for s in services] == ["None"]
    skyhop(k8s_server, "down", "-y", "k1")
    assert pods_of(beta, "k1") == []
    assert (
        beta.api(
            "GET",
            "/api/v1/namespaces/skyhop/services",
            params={"labelSelector": "skyhop.dev/cluster=k1"},
        ).json()["items"]
        == []
    )


def test_two_node_job_sees_both_pod_ips(
    k8s_server: ServerProcess, fake_clusters: dict[str, FakeCluster]
) -> None:
    beta = fake_clusters["beta"]
    try:
        out = skyhop(k8s_server, "launch", "-y", "-c", "k2", "--infra", "k8s/beta",
                     "--num-nodes", "2",
                     "echo rank=$SKYHOP_NODE_RANK host=$(hostname) ips=$SKYHOP_NODE_IPS"
                     ).stdout  # fmt: skip
        head, worker = pods_of(beta, "k2")
        ips = [head["status"]["podIP"], worker["status"]["podIP"]]
        assert len(set(ips)) == 2
        # SKYHOP_NODE_IPS (newline-separated, word-split by echo) are the pod IPs, on both
        # ranks; rank 1 ran in the worker pod, reached over the pod network by the relay.
        assert f"rank=0 host=k2-head ips={ips[0]} {ips[1]}" in out, out
        assert f"rank=1 host=k2-worker1 ips={ips[0]} {ips[1]}" in out, out
    finally:
        skyhop(k8s_server, "down", "-y", "k2", check=False)


def test_gpu_request_becomes_the_pod_spec(
    k8s_server: ServerProcess, fake_clusters: dict[str, FakeCluster]
) -> None:
    beta = fake_clusters["beta"]
    try:
        skyhop(k8s_server, "launch", "-y", "-c", "kgpu", "--infra", "k8s/beta", "--gpus", "A100:1",
               "--cpus", "2", "--memory", "4", "echo gpu-job")  # fmt: skip
        sent = [m for m in beta.received()
                if m["kind"] == "Pod" and m["metadata"]["name"] == "kgpu-head"][-1]  # fmt: skip
        container = sent["spec"]["containers"][0]
        assert container["image"] == "python:3.12-slim"  # no image_id: the default image
        assert container["resources"]["limits"] == {
            "cpu": "2",
            "memory": "4Gi",
            "nvidia.com/gpu": "1",
        }
        assert container["resources"]["requests"] == container["resources"]["limits"]
        terms = sent["spec"]["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]  # fmt: skip
        assert terms == [{"matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "In",
                                                "values": ["NVIDIA-A100-SXM4-80GB"]}]}]  # fmt: skip
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in sent[
            "spec"]["tolerations"]  # fmt: skip
        (pod,) = pods_of(beta, "kgpu")
        assert pod["spec"]["nodeName"] == "beta-gpu"
    finally:
        skyhop(k8s_server, "down", "-y", "kgpu", check=False)


def test_unschedulable_in_alpha_fails_over_to_beta(
    k8s_server: ServerProcess, fake_clusters: dict[str, FakeCluster]
) -> None:
    alpha, beta = fake_clusters["alpha"], fake_clusters["beta"]
    try:
        proc = skyhop(k8s_server, "launch", "-y", "-c", "kfo", "--infra", "k8s", "--num-nodes", "3",
                      "--cpus", "1", "echo ran-on-rank-$SKYHOP_NODE_RANK")  # fmt: skip
        text = proc.stdout + proc.stderr
        assert "0/2 nodes are available: 2 Insufficient cpu." in text, text
        assert "ran-on-rank-2" in text
        assert pods_of(alpha, "kfo") == []  # nothing left behind in the full context
        assert [p["metadata"]["name"] for p in pods_of(beta, "kfo")] == [
            "kfo-head", "kfo-worker1", "kfo-worker2"]  # fmt: skip
    finally:
        skyhop(k8s_server, "down", "-y", "kfo", check=False)


def test_autodown_deletes_the_pods_once_idle(
    k8s_server: ServerProcess, fake_clusters: dict[str, FakeCluster]
) -> None:
    beta = fake_clusters["beta"]
    try:
        out = skyhop(k8s_server, "launch", "-y", "-c", "kad", "--infra", "k8s/beta", "--down",
                     "echo short-job").stdout  # fmt: skip
        assert "short-job" in out
        deadline = time.monotonic() + 60
        while pods_of(beta, "kad") and time.monotonic() < deadline:
            time.sleep(0.5)
        assert pods_of(beta, "kad") == [], "autodown did not delete the idle cluster's pods"
        assert "kad" not in skyhop(k8s_server, "status").stdout
    finally:
        skyhop(k8s_server, "down", "-y", "kad", check=False)


def test_no_room_anywhere_fails_with_the_schedulers_reason_and_leaves_nothing(
    k8s_server: ServerProcess, fake_clusters: dict[str, FakeCluster]
) -> None:
    beta = fake_clusters["beta"]
    proc = skyhop(k8s_server, "launch", "-y", "-c", "kfull", "--infra", "k8s", "--num-nodes", "3",
                  "--cpus", "4", "echo never", check=False)  # fmt: skip
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "never" not in proc.stdout.replace("echo never", "")
    # beta-cpu holds one 4-CPU pod; the GPU node's taint keeps the others off it.
    assert "Insufficient cpu" in text and "untolerated taint {nvidia.com/gpu: present}" in text, (
        text
    )
    deadline = time.monotonic() + 20
    while pods_of(beta, "kfull") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert pods_of(beta, "kfull") == []
    skyhop(k8s_server, "down", "-y", "kfull", check=False)
