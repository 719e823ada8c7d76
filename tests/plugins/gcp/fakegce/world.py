"""The fake project's resources and how they change over time.

One :class:`World` holds instances, firewalls and operations under one lock. A call that
changes something returns an Operation at once and schedules the steps that follow
(``step`` seconds apart, run by :meth:`World.tick` from the server's ticker thread):

- insert: PROVISIONING -> STAGING -> RUNNING (a host slot boots: internal and external
  IP, sshd with the ``ssh-keys`` users). An injected stockout or quota error, or no free
  host slot, ends the operation with that error and the instance is gone.
- stop: STOPPING -> TERMINATED (host halted, external IP released); start: back through
  STAGING to RUNNING with a new external IP; delete: STOPPING -> gone.
- preempt (test control): a SPOT instance gets a ``compute.instances.preempted``
  operation and is stopped or deleted, as its ``instanceTerminationAction`` says.
"""

from __future__ import annotations

import base64
import datetime
import itertools
import secrets
import shutil
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fakegce.discovery import ApiError
from fakegce.hosts import GuestHosts, parse_ssh_keys

ZONES = {
    "us-central1": ["us-central1-a", "us-central1-b", "us-central1-c", "us-central1-f"],
    "us-east1": ["us-east1-b", "us-east1-c", "us-east1-d"],
    "us-west1": ["us-west1-a", "us-west1-b"],
    "europe-west4": ["europe-west4-a", "europe-west4-b", "europe-west4-c"],
    "asia-northeast1": ["asia-northeast1-a", "asia-northeast1-b"],
}
IMAGE_PROJECTS = {"ubuntu-os-cloud": ["ubuntu-2204-lts", "ubuntu-2404-lts-amd64"],
                  "debian-cloud": ["debian-12"]}  # fmt: skip
NAME = r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?"


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def fingerprint() -> str:
    return base64.b64encode(secrets.token_bytes(8)).decode()


def region_of(zone: str) -> str:
    return zone.rsplit("-", 1)[0]


class World:
    def __init__(
        self, project: str, base_url: str, root: Path, hosts: GuestHosts | None, step: float = 0.2
    ) -> None:
        self.project, self.base, self.root, self.hosts, self.step = (
            project,
            base_url,
            root,
            hosts,
            step,
        )
        self.lock = threading.Condition()
        self.instances: dict[tuple[str, str], dict[str, Any]] = {}
        self.firewalls: dict[str, dict[str, Any]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.private: dict[str, dict[str, Any]] = {}  # instance id -> slot, disk, ...
        self.schedule: list[tuple[float, int, Callable[[], None]]] = []
        self.injections: list[dict[str, Any]] = []
        self.inserts: list[dict[str, Any]] = []  # every accepted insert body, for tests
        self.ids = itertools.count(1_000_000_000_000 + secrets.randbelow(10**9))
        self.seq = itertools.count()

    # --- URLs ------------------------------------------------------------------------

    def url(self, *parts: str) -> str:
        return "/".join([self.base.rstrip("/"), "projects", self.project, *parts])

    def zone_url(self, zone: str) -> str:
        return self.url("zones", zone)

    def check_zone(self, zone: str) -> str:
        if not any(zone in zs for zs in ZONES.values()):
            raise ApiError(404, f"The resource 'projects/{self.project}/zones/{zone}' was not "
                                "found", "notFound")  # fmt: skip
        return zone

    # --- time ------------------------------------------------------------------------

    def later(self, delay: float, fn: Callable[[], None]) -> None:
        self.schedule.append((time.monotonic() + delay, next(self.seq), fn))

    def tick(self) -> None:
        """Run every step that is due (called from the ticker thread)."""
        with self.lock:
            # One reading of the clock: with two, a step due between them would be neither
            # run nor kept, and its operation would never end.
            now = time.monotonic()
            due = sorted(s for s in self.schedule if s[0] <= now)
            self.schedule = [s for s in self.schedule if s[0] > now]
            for _, _, fn in due:
                try:
                    fn()
                except Exception:  # a broken step must not stop time for everything else
                    traceback.print_exc()
            if due:
                self.lock.notify_all()

    # --- operations ------------------------------------------------------------------

    def operation(
        self, op_type: str, target: str, target_id: str, zone: str | None, status: str = "PENDING"
    ) -> dict[str, Any]:
        name = f"operation-{int(time.time() * 1000)}-{secrets.token_hex(6)}"
        where = ("zones", zone) if zone else ("global",)
        op = {"kind": "compute#operation", "id": str(next(self.ids)), "name": name,
              "operationType": op_type, "targetLink": target, "targetId": target_id,
              "status": status, "user": "skyhop-test@fake", "progress": 0,
              "insertTime": now_rfc3339(), "selfLink": self.url(*where, "operations", name)}  # fmt: skip
        if zone:
            op["zone"] = self.zone_url(zone)
        if status == "DONE":
            op.update(progress=100, startTime=op["insertTime"], endTime=op["insertTime"])
        self.operations[name] = op
        return op

    def run_op(self, op: dict[str, Any]) -> None:
        op.update(status="RUNNING", startTime=now_rfc3339(), progress=50)

    def finish_op(self, op: dict[str, Any], error: tuple[str, str, int] | None = None) -> None:
        op.update(status="DONE", progress=100, endTime=now_rfc3339())
        op.setdefault("startTime", op["endTime"])
        if error:
            code, message, http = error
            op["error"] = {"errors": [{"code": code, "message": message}]}
            op["httpErrorStatusCode"] = http
            op["httpErrorMessage"] = {503: "SERVICE UNAVAILABLE", 403: "FORBIDDEN"}.get(
                http, "BAD REQUEST"
            )

    def get_op(self, name: str, zone: str | None) -> dict[str, Any]:
        op = self.operations.get(name)
        if op is None or (zone is not None and op.get("zone") != self.zone_url(zone)):
            raise ApiError(404, f"The resource '{name}' was not found", "notFound")
        return op

    def wait_op(self, name: str, zone: str | None, timeout: float = 30.0) -> dict[str, Any]:
        """zoneOperations.wait: return when DONE or after ``timeout`` (the real API: 2 min)."""
        deadline = time.monotonic() + timeout
        op = self.get_op(name, zone)
        while op["status"] != "DONE" and time.monotonic() < deadline:
            self.lock.wait(timeout=max(0.0, min(0.5, deadline - time.monotonic())))
        return op

    # --- injected failures ------------------------------------------------------------

    def injected(self, zone: str, machine_type: str) -> dict[str, Any] | None:
        for inj in self.injections:
            if inj.get("zone") not in (None, zone) or inj.get("region") not in (
                None,
                region_of(zone),
            ):
                continue
            if inj.get("machine_type") not in (None, machine_type):
                continue
            if inj.get("count") is not None:
                if inj["count"] <= 0:
                    continue
                inj["count"] -= 1
            return inj
        return None

    # --- instances -------------------------------------------------------------------

    def instance(self, zone: str, name: str) -> dict[str, Any]:
        inst = self.instances.get((self.check_zone(zone), name))
        if inst is None:
            raise ApiError(404, f"The resource 'projects/{self.project}/zones/{zone}/instances/"
                                f"{name}' was not found", "notFound")  # fmt: skip
        return inst

    def insert_instance(self, zone: str, body: dict[str, Any]) -> dict[str, Any]:
        from fakegce import instances

        self.check_zone(zone)
        name = body.get("name", "")
        if (zone, name) in self.instances:
            raise ApiError(409, f"The resource 'projects/{self.project}/zones/{zone}/instances/"
                                f"{name}' already exists", "alreadyExists")  # fmt: skip
        inst = instances.create(self, zone, body)
        self.inserts.append({"zone": zone, "body": body})
        iid = inst["id"]
        self.instances[(zone, name)] = inst
        self.private[iid] = {"slot": None, "disk": self.root / "disks" / iid,
                             "internal": None}  # fmt: skip
        self.private[iid]["disk"].mkdir(parents=True)
        op = self.operation("insert", inst["selfLink"], iid, zone)
        machine = inst["machineType"].rsplit("/", 1)[-1]
        self.later(self.step, lambda: self.run_op(op))
        self.later(2 * self.step, lambda: self._placed(zone, name, op, machine))
        return op

    def _placed(self, zone: str, name: str, op: dict[str, Any], machine: str) -> None:
        inst = self.instances.get((zone, name))
        if inst is None:
            return
        inj = self.injected(zone, machine)
        if inj is not None:
            code = inj["code"]
            if code.startswith("QUOTA"):
                message = (f"Quota '{inj.get('metric', 'CPUS')}' exceeded.  Limit: 0.0 in region "
                           f"{region_of(zone)}.")  # fmt: skip
                self.finish_op(op, (code, message, 403))
            else:
                message = (f"The zone 'projects/{self.project}/zones/{zone}' does not have enough "
                           "resources available to fulfill the request.  Try a different zone, "
                           "or try again later.")  # fmt: skip
                self.finish_op(op, (code, message, 503))
            self._forget(zone, name)
            return
        inst["status"] = "STAGING"
        self.later(self.step, lambda: self._boot(zone, name, op))

    def _boot(self, zone: str, name: str, op: dict[str, Any] | None) -> None:
        inst = self.instances.get((zone, name))
        if inst is None:
            return
        priv = self.private[inst["id"]]
        slot = self.hosts.free_slot() if self.hosts else -1
        if slot is None:
            if op is not None and op["operationType"] == "insert":
                self.finish_op(op, ("ZONE_RESOURCE_POOL_EXHAUSTED", "The fake has no free host "
                                    f"for {name} in {zone}.", 503))  # fmt: skip
                self._forget(zone, name)
            else:
                inst.update(status="TERMINATED", statusMessage="no host free to start on")
                if op is not None:
                    self.finish_op(op, ("ZONE_RESOURCE_POOL_EXHAUSTED",
                                        f"The fake has no free host for {name}.", 503))  # fmt: skip
            return
        internal = priv["internal"] or (self.hosts.fresh_ip() if self.hosts else "10.128.0.2")
        external = self.hosts.fresh_ip() if self.hosts else "34.0.0.1"
        if self.hosts:
            try:
                self.hosts.boot(name, slot, priv["disk"], parse_ssh_keys(inst.get("metadata", {})),
                                (internal, external))  # fmt: skip
            except Exception as exc:
                self.hosts.halt(slot)
                inst.update(status="TERMINATED", statusMessage=f"the fake host did not boot: {exc}")
                if op is not None:
                    self.finish_op(
                        op, ("INTERNAL_ERROR", f"the fake host did not boot: {exc}", 500)
                    )
                return
        priv.update(slot=slot, internal=internal)
        nic = inst["networkInterfaces"][0]
        nic["networkIP"] = internal
        for config in nic.get("accessConfigs", []):
            config["natIP"] = external
        inst.update(status="RUNNING", lastStartTimestamp=now_rfc3339())
        inst.pop("statusMessage", None)
        if op is not None:
            self.finish_op(op)

    def _halt(self, inst: dict[str, Any]) -> None:
        priv = self.private[inst["id"]]
        if priv["slot"] is not None and self.hosts and priv["slot"] >= 0:
            self.hosts.halt(priv["slot"])
        priv["slot"] = None
        for config in inst["networkInterfaces"][0].get("accessConfigs", []):
            config.pop("natIP", None)
        inst.update(status="TERMINATED", lastStopTimestamp=now_rfc3339())

    def _forget(self, zone: str, name: str) -> None:
        inst = self.instances.pop((zone, name), None)
        if inst is None:
            return
        self._halt(inst)
        priv = self.private.pop(inst["id"])
        shutil.rmtree(priv["disk"], ignore_errors=True)

    def stop_instance(self, zone: str, name: str) -> dict[str, Any]:
        inst = self.instance(zone, name)
        op = self.operation("stop", inst["selfLink"], inst["id"], zone)
        if inst["status"] == "TERMINATED":
            self.later(0, lambda: self.finish_op(op))
            return op
        inst["status"] = "STOPPING"
        self.later(self.step, lambda: self.run_op(op))

        def stopped() -> None:
            self._halt(inst)
            self.finish_op(op)

        self.later(2 * self.step, stopped)
        return op

    def start_instance(self, zone: str, name: str) -> dict[str, Any]:
        inst = self.instance(zone, name)
        if inst["status"] not in ("TERMINATED", "RUNNING"):
            raise ApiError(400, f"The resource 'projects/{self.project}/zones/{zone}/instances/"
                                f"{name}' is not ready", "resourceNotReady")  # fmt: skip
        op = self.operation("start", inst["selfLink"], inst["id"], zone)
        if inst["status"] == "RUNNING":
            self.later(0, lambda: self.finish_op(op))
            return op
        inst["status"] = "PROVISIONING"
        self.later(self.step, lambda: self.run_op(op))
        self.later(2 * self.step, lambda: inst.update(status="STAGING"))
        self.later(3 * self.step, lambda: self._boot(zone, name, op))
        return op

    def delete_instance(self, zone: str, name: str) -> dict[str, Any]:
        inst = self.instance(zone, name)
        op = self.operation("delete", inst["selfLink"], inst["id"], zone)
        inst["status"] = "STOPPING"
        self.later(self.step, lambda: self.run_op(op))

        def deleted() -> None:
            self._forget(zone, name)
            self.finish_op(op)

        self.later(2 * self.step, deleted)
        return op

    def preempt(self, zone: str, name: str) -> dict[str, Any]:
        inst = self.instance(zone, name)
        scheduling = inst.get("scheduling", {})
        if scheduling.get("provisioningModel") != "SPOT" and not scheduling.get("preemptible"):
            raise ApiError(400, f"{name} is not a spot VM; only spot VMs are preempted.")
        if inst["status"] != "RUNNING":
            raise ApiError(400, f"{name} is {inst['status']}, not RUNNING.")
        op = self.operation("compute.instances.preempted", inst["selfLink"], inst["id"], zone,
                            status="DONE")  # fmt: skip
        op["statusMessage"] = "Instance was preempted."
        if scheduling.get("instanceTerminationAction") == "DELETE":
            self._forget(zone, name)
        else:
            self._halt(inst)
            inst["statusMessage"] = "Instance was preempted."
        self.lock.notify_all()
        return op

    def set_field(
        self, zone: str, name: str, field: str, body: dict[str, Any], fp_key: str, value_key: str
    ) -> dict[str, Any]:
        """setLabels / setMetadata / setTags: the fingerprint must be the current one."""
        inst = self.instance(zone, name)
        current = inst[field] if field != "labels" else {"fingerprint": inst["labelFingerprint"]}
        if body.get(fp_key) != current.get("fingerprint"):
            raise ApiError(412, f"Supplied fingerprint does not match current {field} "
                                "fingerprint.", "conditionNotMet")  # fmt: skip
        if field == "labels":
            inst["labels"] = dict(body.get("labels", {}))
            inst["labelFingerprint"] = fingerprint()
        else:
            inst[field] = {
                **{k: v for k, v in inst[field].items() if k != value_key},
                value_key: list(body.get(value_key, [])),
                "fingerprint": fingerprint(),
            }
            if field == "metadata" and inst["status"] == "RUNNING":
                from fakegce.hosts import write_keys

                write_keys(self.private[inst["id"]]["disk"], parse_ssh_keys(inst["metadata"]))
        return self.operation(f"set{field.capitalize()}", inst["selfLink"], inst["id"], zone,
                              status="DONE")  # fmt: skip

    # --- firewalls -------------------------------------------------------------------

    def insert_firewall(self, body: dict[str, Any]) -> dict[str, Any]:
        from fakegce import instances

        name = body.get("name", "")
        if name in self.firewalls:
            raise ApiError(409, f"The resource 'projects/{self.project}/global/firewalls/{name}' "
                                "already exists", "alreadyExists")  # fmt: skip
        rule = instances.firewall(self, body)
        self.firewalls[name] = rule
        op = self.operation("insert", rule["selfLink"], rule["id"], None)
        self.later(self.step, lambda: self.finish_op(op))
        return op

    def firewall(self, name: str) -> dict[str, Any]:
        if name not in self.firewalls:
            raise ApiError(404, f"The resource 'projects/{self.project}/global/firewalls/{name}' "
                                "was not found", "notFound")  # fmt: skip
        return self.firewalls[name]

    def patch_firewall(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        rule = self.firewall(name)
        rule.update({k: v for k, v in body.items() if k not in ("name", "id", "selfLink")})
        op = self.operation("patch", rule["selfLink"], rule["id"], None)
        self.later(self.step, lambda: self.finish_op(op))
        return op

    def delete_firewall(self, name: str) -> dict[str, Any]:
        rule = self.firewall(name)
        op = self.operation("delete", rule["selfLink"], rule["id"], None)

        def deleted() -> None:
            self.firewalls.pop(name, None)
            self.finish_op(op)

        self.later(self.step, deleted)
        return op

    def reset(self) -> None:
        for zone, name in list(self.instances):
            self._forget(zone, name)
        self.firewalls.clear()
        self.operations.clear()
        self.injections.clear()
        self.inserts.clear()
        self.schedule.clear()
