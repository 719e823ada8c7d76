"""The kubernetes backend's parts against the fakes: offers from nodes, GPU names from the
common labels, manifests, exec-credential kubeconfigs under trio, and watches that
reconnect when the server ends them."""

from __future__ import annotations

import stat
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import trio
import yaml
from fakekube_proc import FakeCluster

from skyhop_core.context import BackendContext
from skyhop_core.models.resources import Resources
from skyhop_kubernetes import gpus, kube, manifests, pods, provisioner
from skyhop_kubernetes import plugin as k8s_plugin


def make_ctx(tmp_path: Path, config: dict[str, Any]) -> BackendContext:
    return BackendContext(state_dir=str(tmp_path / "state"), persistent_path=str(tmp_path),
                          config=config, user_hash="abcd1234")  # fmt: skip


@pytest.mark.parametrize(
    ("label", "name"),
    [("NVIDIA-A100-SXM4-80GB", "A100"), ("nvidia-tesla-a100", "A100"), ("a100", "A100"),
     ("NVIDIA-H100-80GB-HBM3", "H100"), ("nvidia-l4", "L4"), ("Tesla-T4", "T4"),
     ("NVIDIA-GeForce-RTX-4090", "RTX4090")],
)  # fmt: skip
def test_gpu_labels_of_every_operator_name_the_same_gpu(label: str, name: str) -> None:
    assert gpus.canonical(label) == name


def test_offers_come_from_node_allocatable_and_gpu_labels(
    tmp_path: Path, k8s_config: dict[str, Any]
) -> None:
    ctx = make_ctx(tmp_path, k8s_config)
    found = trio.run(provisioner.offers, ctx, Resources(infra="k8s", accelerators={"A100": 1}))
    assert [(o.region, o.instance_type, o.accelerators, o.price) for o in found] == [
        ("beta", "8CPU--32GB--A100:2", {"A100": 2}, 0.0)]  # fmt: skip
    small = trio.run(provisioner.offers, ctx, Resources(infra="k8s/alpha", cpus="1"))
    assert [(o.cpus, o.memory_gb) for o in small] == [(1.0, 2.0)]
    assert trio.run(provisioner.offers, ctx, Resources(infra="k8s", cpus="100+")) == []


def test_pod_manifest_labels_requests_and_overrides() -> None:
    pod = manifests.pod(
        "train", 2, user_hash="u1", image="img:1", cpus=0.5, memory_gb=1.5,
        extra_labels={"team": "ml"}, tolerations=[{"key": "spot", "operator": "Exists"}],
        overrides={"spec": {"serviceAccountName": "runner", "priorityClassName": "high"}},
    )  # fmt: skip
    assert pod["metadata"]["name"] == "train-worker2"
    assert pod["metadata"]["labels"] == {"team": "ml", "skyhop.dev/cluster": "train",
                                         "skyhop.dev/user": "u1", "skyhop.dev/rank": "2",
                                         "skyhop.dev/managed-by": "skyhop"}  # fmt: skip
    container = pod["spec"]["containers"][0]
    assert container["image"] == "img:1"
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "1536Mi"}
    assert pod["spec"]["tolerations"] == [{"key": "spot", "operator": "Exists"}]
    assert pod["spec"]["serviceAccountName"] == "runner" and pod["spec"]["restartPolicy"] == "Never"


def test_exec_credential_kubeconfig_works_under_trio(
    tmp_path: Path, fake_clusters: dict[str, FakeCluster], kubeconfig: Path
) -> None:
    beta = fake_clusters["beta"]
    calls = tmp_path / "calls"
    plugin_script = tmp_path / "cred.py"
    plugin_script.write_text(
        "import json, sys\n"
        f"open({str(calls)!r}, 'a').write('x')\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1', 'kind': 'ExecCredential',"
        f" 'status': {{'token': {beta.token!r}, 'expirationTimestamp': '2999-01-01T00:00:00Z'}}}}))\n"
    )  # fmt: skip
    plugin_script.chmod(plugin_script.stat().st_mode | stat.S_IXUSR)
    config = yaml.safe_load(kubeconfig.read_text())
    for user in config["users"]:
        if user["name"] == "beta":
            user["user"] = {"exec": {"apiVersion": "client.authentication.k8s.io/v1",
                                     "command": sys.executable, "args": [str(plugin_script)],
                                     "interactiveMode": "Never"}}  # fmt: skip
    path = tmp_path / "exec-kubeconfig"
    path.write_text(yaml.safe_dump(config))
    ctx = make_ctx(tmp_path, {"kubeconfig": str(path), "allowed_contexts": ["beta"]})
    kube._TOKENS.clear()
    first = trio.run(k8s_plugin.skyhop_check, ctx)
    second = trio.run(k8s_plugin.skyhop_check, ctx)
    assert first.enabled and second.enabled, first
    assert first.details["beta"].startswith("ok: 2 node(s), namespace skyhop")
    assert calls.read_text() == "x"  # the token is cached until it expires


def test_check_names_a_context_that_does_not_answer(tmp_path: Path, kubeconfig: Path) -> None:
    config = yaml.safe_load(kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:9"
    path = tmp_path / "kc"
    path.write_text(yaml.safe_dump(config))
    ctx = make_ctx(tmp_path, {"kubeconfig": str(path), "allowed_contexts": ["alpha", "beta"]})
    result = trio.run(k8s_plugin.skyhop_check, ctx)
    assert result.enabled and result.details["alpha"].startswith("unusable: Cannot reach")
    bad = make_ctx(tmp_path, {"kubeconfig": str(path), "allowed_contexts": ["gamma"]})
    refused = trio.run(k8s_plugin.skyhop_check, bad)
    assert not refused.enabled and "gamma" in refused.reason


def test_watch_reconnects_after_the_server_ends_it(
    tmp_path: Path, k8s_config: dict[str, Any], fake_clusters: dict[str, FakeCluster],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setattr(pods, "WATCH_SECONDS", 1)
    alpha = fake_clusters["alpha"]
    ctx = make_ctx(tmp_path, k8s_config)
    manifest = manifests.pod("wr", 0, user_hash="u", image="x", cpus=0.1, memory_gb=None)

    def create_later() -> None:
        time.sleep(2.5)  # two server-side watch timeouts pass first
        alpha.api("POST", "/api/v1/namespaces/skyhop/pods", json=manifest)

    async def wait() -> dict[str, Any]:
        async with kube.client_for(ctx, "alpha") as client:
            with trio.fail_after(20):
                return await pods.wait_until(client, "wr", lambda found: "wr-head" in found)

    thread = threading.Thread(target=create_later)
    thread.start()
    try:
        found = trio.run(wait)
        assert list(found) == ["wr-head"]
    finally:
        thread.join()
        alpha.api("DELETE", "/api/v1/namespaces/skyhop/pods/wr-head")


def test_runner_deadline_upload_of_a_file_and_exit_codes(
    tmp_path: Path, k8s_config: dict[str, Any], fake_clusters: dict[str, FakeCluster]
) -> None:
    from skyhop_core.exceptions import CommandError
    from skyhop_core.models.records import NodeInfo
    from skyhop_kubernetes.runner import KubernetesCommandRunner

    alpha = fake_clusters["alpha"]
    manifest = manifests.pod("rn", 0, user_hash="u", image="x", cpus=0.1, memory_gb=None)
    assert alpha.api("POST", "/api/v1/namespaces/skyhop/pods", json=manifest).status_code == 201
    ctx = make_ctx(tmp_path, {**k8s_config, "exec_timeout": 1})
    node = NodeInfo(rank=0, ip="", instance_id="rn-head", cpus=0.1, memory_gb=0, runtime_dir="/root/.r",
                    home="/root", extra={"pod": "rn-head", "context": "alpha"})  # fmt: skip
    runner = KubernetesCommandRunner(ctx, node)
    (tmp_path / "one.txt").write_text("single file\n")

    async def scenario() -> None:
        async with kube.client_for(ctx, "alpha") as client:
            with trio.fail_after(20):
                await pods.wait_until(client, "rn", lambda found: found.get("rn-head", {})
                                      .get("status", {}).get("phase") == "Running")  # fmt: skip
        await runner.upload(str(tmp_path / "one.txt"), "~/sub/renamed.txt")
        shown = await runner.run(["cat", "/root/sub/renamed.txt"])
        assert shown.stdout == b"single file\n"
        missing = await runner.run(["no-such-command-xyz"])
        assert missing.returncode != 0 and missing.returncode in (1, 126, 127)
        env = await runner.run(["sh", "-c", "echo $A:$(pwd)"], env={"A": "b c"}, cwd="/tmp")
        assert env.stdout == b"b c:/tmp\n"
        chunks: list[bytes] = []

        async def collect(chunk: bytes) -> None:
            chunks.append(chunk)

        code = await runner.stream(["sh", "-c", "echo out; echo err >&2; exit 4"], collect)
        assert code == 4 and b"out" in b"".join(chunks) and b"err" in b"".join(chunks)
        with pytest.raises(CommandError, match=r"did not finish within 1s .*exec_timeout"):
            await runner.run(["sleep", "5"])
        alpha.api("DELETE", "/api/v1/namespaces/skyhop/pods/rn-head")
        async with kube.client_for(ctx, "alpha") as client:
            with trio.fail_after(20):
                await pods.wait_until(client, "rn", lambda found: not found)
        with pytest.raises(CommandError, match=r"pod rn-head .* does not exist"):
            await runner.run(["true"])

    try:
        trio.run(scenario)
    finally:
        alpha.api("DELETE", "/api/v1/namespaces/skyhop/pods/rn-head")


def test_in_cluster_service_account_without_a_kubeconfig(
    tmp_path: Path, fake_clusters: dict[str, FakeCluster], monkeypatch: pytest.MonkeyPatch
) -> None:
    beta = fake_clusters["beta"]
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(beta.token)
    (account / "namespace").write_text("skyhop")
    (account / "ca.crt").write_bytes(beta.cert.read_bytes())
    monkeypatch.setattr(kube, "SERVICE_ACCOUNT", str(account))
    host, port = beta.url.removeprefix("https://").rsplit(":", 1)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", port)
    ctx = make_ctx(tmp_path, {"kubeconfig": str(tmp_path / "no-kubeconfig")})
    result = trio.run(k8s_plugin.skyhop_check, ctx)
    assert result.enabled and result.details == {"in-cluster": "ok: 2 node(s), namespace skyhop"}
    (offer, *_) = trio.run(provisioner.offers, ctx, Resources(infra="k8s", cpus="2"))
    assert offer.region == "in-cluster"


def test_cluster_names_kubernetes_refuses_become_valid_object_names() -> None:
    assert manifests.pod_name("dev", 0) == "dev-head"
    odd = manifests.pod_name("My_Job.v2", 3)
    assert odd.startswith("my-job-v2-") and odd.endswith("-worker3")
    assert odd != manifests.pod_name("my-job-v2", 3)
    long = manifests.pod_name("a" * 63, 12)
    assert len(long) <= 63 and long.endswith("-worker12")
    pod = manifests.pod("My_Job.v2", 0, user_hash="u", image="x", cpus=1, memory_gb=None)
    assert pod["metadata"]["labels"]["skyhop.dev/cluster"] == "My_Job.v2"  # a valid label value
    from fakekube.validate import check

    check("pods", pod)
    check("services", manifests.headless_service("My_Job.v2", 0, "u"))


def test_amd_gpus_request_their_own_resource_and_label(tmp_path: Path) -> None:
    from skyhop_core.models.records import Offer, ProvisionRequest

    nodes = [
        {"metadata": {"name": "mi", "labels": {"amd.com/gpu.product-name": "AMD-Instinct-MI300X"}},
         "status": {"allocatable": {"cpu": "16", "memory": "64Gi", "amd.com/gpu": "8"}}},
        {"metadata": {"name": "a1", "labels": {"cloud.google.com/gke-accelerator": "nvidia-tesla-a100"}},
         "status": {"allocatable": {"cpu": "16", "memory": "64Gi", "nvidia.com/gpu": "8"}}},
    ]  # fmt: skip
    offer = provisioner.node_offer("ctx", nodes[0])
    assert offer is not None and offer.accelerators == {"MI300X": 8}
    resources = Resources(infra="k8s/ctx", accelerators={"MI300X": 2})
    request = ProvisionRequest(cluster_name="amd", num_nodes=1, resources=resources,
                               offer=Offer(backend="kubernetes", instance_type="x", cpus=16,
                                           memory_gb=64, region="ctx"))  # fmt: skip
    (pod,) = provisioner.pod_manifests(make_ctx(tmp_path, {}), request, "ctx", nodes, [0])
    assert pod["spec"]["containers"][0]["resources"]["limits"]["amd.com/gpu"] == "2"
    terms = pod["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    assert terms["nodeSelectorTerms"] == [{"matchExpressions": [
        {"key": "amd.com/gpu.product-name", "operator": "In", "values": ["AMD-Instinct-MI300X"]}]}]  # fmt: skip
