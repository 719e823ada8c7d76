"""The fake Compute API itself, driven through Google's own client path (google-auth's
service-account credentials and its ``AuthorizedSession``), so the backend's tests stand on
something that behaves like Compute Engine: schema checks from the discovery document,
OAuth, states over time, label filters, fingerprints, injected errors, hosts that answer
SSH as the ``ssh-keys`` user, a new external IP after a restart, spot preemption."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

ZONE = "us-central1-a"
IMAGE = "projects/ubuntu-os-cloud/global/images/family/ubuntu-2204-lts"


def session(credentials: Path, scopes: list[str] | None = None) -> Any:
    from google.auth.transport.requests import AuthorizedSession
    from google.oauth2 import service_account

    creds = service_account.Credentials.from_service_account_file(
        str(credentials), scopes=scopes or ["https://www.googleapis.com/auth/cloud-platform"]
    )
    return AuthorizedSession(creds)


def body(name: str, pub: str = "", **extra: Any) -> dict[str, Any]:
    out = {"name": name, "machineType": f"zones/{ZONE}/machineTypes/e2-standard-2",
           "disks": [{"boot": True, "autoDelete": True,
                      "initializeParams": {"sourceImage": IMAGE, "diskSizeGb": "20"}}],
           "networkInterfaces": [{"network": "global/networks/default",
                                  "accessConfigs": [{"type": "ONE_TO_ONE_NAT"}]}],
           "labels": {"skyhop-cluster": "fk"}}  # fmt: skip
    if pub:
        out["metadata"] = {"items": [{"key": "ssh-keys", "value": f"skyhop:{pub}"}]}
    out.update(extra)
    return out


class Api:
    def __init__(self, fake: Any) -> None:
        self.fake = fake
        self.s = session(fake.credentials)
        self.base = f"{fake.compute_endpoint}projects/{fake.project}/"

    def call(self, verb: str, path: str, expect: int = 200, **kw: Any) -> Any:
        r = self.s.request(verb, self.base + path, **kw)
        assert r.status_code == expect, (verb, path, r.status_code, r.text)
        return r.json()

    def wait(self, op: dict[str, Any]) -> dict[str, Any]:
        where = f"zones/{ZONE}" if "zone" in op else "global"
        for _ in range(10):
            op = self.call("POST", f"{where}/operations/{op['name']}/wait")
            if op["status"] == "DONE":
                return op
        raise AssertionError(f"operation never finished: {op}")


def test_requests_are_checked_against_the_discovery_document(gcp_env: Any) -> None:
    api = Api(gcp_env)
    err = api.call("POST", f"zones/{ZONE}/instances", 400, json=body("a", bogus=1))
    assert "Unknown name \"bogus\" at 'resource'" in err["error"]["message"]
    nested = body("a", scheduling={"provisioningModel": "SPOT", "preemptable": True})
    err = api.call("POST", f"zones/{ZONE}/instances", 400, json=nested)
    assert "'resource.scheduling'" in err["error"]["message"]
    err = api.call(
        "POST",
        f"zones/{ZONE}/instances",
        400,
        json=body("a", scheduling={"provisioningModel": "CHEAP"}),
    )
    assert "CHEAP" in err["error"]["message"] and "SPOT" in err["error"]["message"]
    err = api.call("GET", f"zones/{ZONE}/instances", 400, params={"colour": "red"})
    assert "colour" in err["error"]["message"]
    err = api.call("POST", f"zones/{ZONE}/instances", 400,
                   json=body("a", guestAccelerators=[{"acceleratorType": "nvidia-tesla-t4",
                                                      "acceleratorCount": 1}]))  # fmt: skip
    assert "live migration" in err["error"]["message"]
    api.call("GET", f"zones/{ZONE}/instances/nope", 404)
    api.call("GET", "zones/mars-north1-a/instances", 404)
    assert gcp_env.instances() == []


def test_oauth_with_the_service_account_key_and_nothing_else(gcp_env: Any, tmp_path: Path) -> None:
    import httpx
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from google.auth.exceptions import RefreshError

    url = f"{gcp_env.compute_endpoint}projects/{gcp_env.project}"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer made-up"}).status_code == 401
    assert session(gcp_env.credentials).get(url).status_code == 200
    narrow = session(gcp_env.credentials, ["https://www.googleapis.com/auth/devstorage.read_only"])
    assert narrow.get(url).status_code == 403
    import json

    forged = json.loads(gcp_env.credentials.read_text())
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged["private_key"] = key.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()).decode()  # fmt: skip
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    with pytest.raises(RefreshError, match="invalid_grant"):
        session(tmp_path / "forged.json").get(url)


def ssh(key: Path, ip: str, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", "-i", str(key), "-o", "StrictHostKeyChecking=no", "-o", "BatchMode=yes",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5", f"skyhop@{ip}", command],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_instance_lifecycle_on_a_real_host(gce_hosts: Any, tmp_path: Path) -> None:
    api = Api(gce_hosts)
    key = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-t", "ed25519", "-f", str(key)], check=True)
    op = api.call(
        "POST",
        f"zones/{ZONE}/instances",
        json=body("life", key.with_suffix(".pub").read_text().strip()),
    )
    assert op["status"] in ("PENDING", "RUNNING")
    seen = {api.call("GET", f"zones/{ZONE}/instances/life")["status"]}
    assert api.wait(op).get("error") is None
    inst = api.call("GET", f"zones/{ZONE}/instances/life")
    seen.add(inst["status"])
    assert "PROVISIONING" in seen and inst["status"] == "RUNNING", seen
    nic = inst["networkInterfaces"][0]
    first_ip, internal = nic["accessConfigs"][0]["natIP"], nic["networkIP"]
    done = ssh(key, first_ip, "echo $HOME; echo kept > ~/marker")
    assert done.returncode == 0 and done.stdout.strip() == "/home/skyhop", done.stderr

    api.wait(api.call("POST", f"zones/{ZONE}/instances/life/stop"))
    stopped = api.call("GET", f"zones/{ZONE}/instances/life")
    assert stopped["status"] == "TERMINATED"
    assert "natIP" not in stopped["networkInterfaces"][0]["accessConfigs"][0]
    assert ssh(key, first_ip, "true").returncode == 255
    # Another VM takes the host slot "life" had: it restarts on another host (another MAC)
    # with its internal IP, which must still be reachable.
    api.wait(api.call("POST", f"zones/{ZONE}/instances", json=body("squatter")))
    api.wait(api.call("POST", f"zones/{ZONE}/instances/life/start"))
    assert ssh(key, internal, "true").returncode == 0
    started = api.call("GET", f"zones/{ZONE}/instances/life")["networkInterfaces"][0]
    assert started["networkIP"] == internal and started["accessConfigs"][0]["natIP"] != first_ip
    again = ssh(key, started["accessConfigs"][0]["natIP"], "cat ~/marker")
    assert again.stdout.strip() == "kept", again.stderr  # the boot disk survived the restart

    api.wait(api.call("DELETE", f"zones/{ZONE}/instances/life"))
    api.wait(api.call("DELETE", f"zones/{ZONE}/instances/squatter"))
    api.call("GET", f"zones/{ZONE}/instances/life", 404)
    assert gce_hosts.instances() == []


def test_filters_and_fingerprints(gcp_env: Any) -> None:
    api = Api(gcp_env)
    for name, cluster in (("f1", "fa"), ("f2", "fb")):
        api.call(
            "POST", f"zones/{ZONE}/instances", json=body(name, labels={"skyhop-cluster": cluster})
        )
    listed = api.call(
        "GET", f"zones/{ZONE}/instances", params={"filter": 'labels.skyhop-cluster = "fa"'}
    )
    assert [i["name"] for i in listed["items"]] == ["f1"]
    either = api.call(
        "GET",
        f"zones/{ZONE}/instances",
        params={"filter": '(labels.skyhop-cluster = "fa") OR (labels.skyhop-cluster = "fb")'},
    )
    assert [i["name"] for i in either["items"]] == ["f1", "f2"]
    none = api.call(
        "GET",
        f"zones/{ZONE}/instances",
        params={
            "filter": 'status != "PROVISIONING" AND status != "STAGING" AND status != "RUNNING"'
        },
    )
    assert "items" not in none or none["items"] == []
    err = api.call("GET", f"zones/{ZONE}/instances", 400, params={"filter": "colour = red"})
    assert "colour" in err["error"]["message"]
    inst = api.call("GET", f"zones/{ZONE}/instances/f1")
    stale = {"labels": {"a": "b"}, "labelFingerprint": "c3RhbGU="}
    err = api.call("POST", f"zones/{ZONE}/instances/f1/setLabels", 412, json=stale)
    assert err["error"]["errors"][0]["reason"] == "conditionNotMet"
    fresh = {"labels": {"a": "b"}, "labelFingerprint": inst["labelFingerprint"]}
    api.call("POST", f"zones/{ZONE}/instances/f1/setLabels", json=fresh)
    after = api.call("GET", f"zones/{ZONE}/instances/f1")
    assert after["labels"] == {"a": "b"} and after["labelFingerprint"] != inst["labelFingerprint"]


@pytest.mark.parametrize(
    "code",
    ["ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", "QUOTA_EXCEEDED"],
)
def test_injected_stockouts_and_quota_end_the_operation(gcp_env: Any, code: str) -> None:
    api = Api(gcp_env)
    gcp_env.control("inject", {"zone": ZONE, "code": code, "count": 1})
    op = api.wait(api.call("POST", f"zones/{ZONE}/instances", json=body("full")))
    assert op["error"]["errors"][0]["code"] == code
    assert op["httpErrorStatusCode"] == (403 if code.startswith("QUOTA") else 503)
    api.call("GET", f"zones/{ZONE}/instances/full", 404)
    ok = api.wait(api.call("POST", f"zones/{ZONE}/instances", json=body("full")))
    assert "error" not in ok  # count=1: the next insert gets capacity


def test_preempting_a_spot_vm(gcp_env: Any) -> None:
    api = Api(gcp_env)
    spot = {"provisioningModel": "SPOT", "onHostMaintenance": "TERMINATE",
            "automaticRestart": False}  # fmt: skip
    api.wait(api.call("POST", f"zones/{ZONE}/instances", json=body("sp", scheduling=spot)))
    api.wait(api.call("POST", f"zones/{ZONE}/instances", json=body("od")))
    with pytest.raises(Exception, match="400"):
        gcp_env.control("preempt", {"zone": ZONE, "instance": "od"})
    gcp_env.control("preempt", {"zone": ZONE, "instance": "sp"})
    inst = api.call("GET", f"zones/{ZONE}/instances/sp")
    assert inst["status"] == "TERMINATED" and "preempted" in inst["statusMessage"]
    ops = api.call(
        "GET",
        f"zones/{ZONE}/operations",
        params={"filter": 'operationType = "compute.instances.preempted"'},
    )
    assert [o["targetId"] for o in ops["items"]] == [inst["id"]]
    time.sleep(0.1)
    assert api.call("GET", f"zones/{ZONE}/instances/od")["status"] == "RUNNING"


def test_a_step_due_while_the_ticker_looks_is_run_not_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fake's clock under load: time passes between reading what is due and keeping
    the rest. A step that falls due in that gap still runs on the next tick (it once
    vanished, and an insert's operation then never ended: a provision hung for 120 s)."""
    from fakegce import world as world_module

    clock = iter(float(t) for t in range(100, 200))
    monkeypatch.setattr(world_module.time, "monotonic", lambda: next(clock))
    world = world_module.World("p", "http://fake/compute/v1", tmp_path, hosts=None)
    ran: list[str] = []
    world.schedule.append((100.5, 0, lambda: ran.append("step")))  # due after the first read
    for _ in range(3):
        world.tick()
    assert ran == ["step"]
