"""Building Instance and Firewall resources from request bodies, with the checks the real
API makes beyond the schema (names, machine type and image references, GPUs needing
``onHostMaintenance: TERMINATE``, spot scheduling, label rules)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from fakegce.discovery import ApiError

if TYPE_CHECKING:
    from fakegce.world import World

LABEL = re.compile(r"[a-z][-_a-z0-9]{0,62}")
LABEL_VALUE = re.compile(r"[-_a-z0-9]{0,63}")


def _bad(field: str, value: Any, why: str) -> ApiError:
    return ApiError(400, f"Invalid value for field '{field}': '{value}'. {why}")


def _short(ref: str, kind: str) -> str:
    """``.../zones/z/machineTypes/n1-standard-4`` (full or partial URL) -> its last part."""
    m = re.search(rf"(?:^|/){kind}/([^/]+)$", ref)
    return m.group(1) if m else ""


def _check_image(world: World, ref: str) -> str:
    from fakegce.world import IMAGE_PROJECTS

    m = re.search(r"projects/([^/]+)/global/images/(family/)?([^/]+)$", ref)
    if not m or m.group(1) not in IMAGE_PROJECTS:
        raise _bad(
            "resource.disks[0].initializeParams.sourceImage",
            ref,
            "The referenced image resource cannot be found.",
        )
    project, family, name = m.groups()
    known = IMAGE_PROJECTS[project]
    if (family and name not in known) or (
        not family and not any(name.startswith(f) for f in known)
    ):
        raise _bad(
            "resource.disks[0].initializeParams.sourceImage",
            ref,
            "The referenced image resource cannot be found.",
        )
    return f"{world.base}/projects/{project}/global/images/{name}"


def create(world: World, zone: str, body: dict[str, Any]) -> dict[str, Any]:
    from fakegce.world import NAME, fingerprint, now_rfc3339

    name = body.get("name", "")
    if not re.fullmatch(NAME, name):
        raise _bad("resource.name", name, f"Must be a match of regex '{NAME}'")
    machine = _short(body.get("machineType", ""), "machineTypes")
    if not re.fullmatch(r"[a-z][a-z0-9]*-[a-z0-9-]+", machine):
        raise _bad(
            "resource.machineType",
            body.get("machineType"),
            "Machine type with name does not exist in zone.",
        )
    for key, value in (body.get("labels") or {}).items():
        if not LABEL.fullmatch(key) or not LABEL_VALUE.fullmatch(value):
            raise _bad(
                "resource.labels",
                f"{key}={value}",
                "Label keys and values must be "
                "lowercase letters, digits, '-' or '_' (keys start with a letter).",
            )
    disks = body.get("disks") or []
    boot = [d for d in disks if d.get("boot")]
    if len(boot) != 1 or "initializeParams" not in boot[0]:
        raise ApiError(400, "Invalid value for field 'resource.disks': exactly one boot disk "
                            "with initializeParams is required.")  # fmt: skip
    params = boot[0]["initializeParams"]
    image = _check_image(world, params.get("sourceImage", ""))
    disk_type = _short(params.get("diskType", "zones/x/diskTypes/pd-standard"), "diskTypes")
    if disk_type not in ("pd-standard", "pd-balanced", "pd-ssd", "pd-extreme",
                         "hyperdisk-balanced"):  # fmt: skip
        raise _bad("resource.disks[0].initializeParams.diskType", disk_type, "Unknown disk type.")
    scheduling = dict(body.get("scheduling") or {})
    accelerators = body.get("guestAccelerators") or []
    if accelerators and scheduling.get("onHostMaintenance", "MIGRATE") != "TERMINATE":
        raise ApiError(400, "Instances with guest accelerators do not support live migration.")
    if scheduling.get("provisioningModel") == "SPOT":
        if scheduling.get("onHostMaintenance", "TERMINATE") != "TERMINATE":
            raise ApiError(400, "Spot VMs must have onHostMaintenance set to TERMINATE.")
        if scheduling.get("automaticRestart"):
            raise ApiError(400, "Spot VMs cannot be set to restart automatically.")
        scheduling.setdefault("instanceTerminationAction", "STOP")
    nics = body.get("networkInterfaces") or []
    if not nics:
        raise ApiError(400, "Invalid value for field 'resource.networkInterfaces': at least one "
                            "network interface is required.")  # fmt: skip
    iid = str(next(world.ids))
    zone_url = world.zone_url(zone)
    nic = {"kind": "compute#networkInterface", "name": "nic0", "fingerprint": fingerprint(),
           "network": world.url("global", "networks", _short(nics[0].get("network", "global/networks/default"), "networks") or "default"),
           "accessConfigs": [{"kind": "compute#accessConfig", "type": "ONE_TO_ONE_NAT",
                              "name": c.get("name", "External NAT"),
                              "networkTier": c.get("networkTier", "PREMIUM")}
                             for c in nics[0].get("accessConfigs", [])]}  # fmt: skip
    return {
        "kind": "compute#instance",
        "id": iid,
        "name": name,
        "zone": zone_url,
        "creationTimestamp": now_rfc3339(),
        "status": "PROVISIONING",
        "machineType": f"{zone_url}/machineTypes/{machine}",
        "selfLink": f"{zone_url}/instances/{name}",
        "cpuPlatform": "Intel Cascade Lake",
        "description": body.get("description", ""),
        "labels": dict(body.get("labels") or {}),
        "labelFingerprint": fingerprint(),
        "metadata": {
            "kind": "compute#metadata",
            "fingerprint": fingerprint(),
            "items": list((body.get("metadata") or {}).get("items", [])),
        },
        "tags": {
            "items": list((body.get("tags") or {}).get("items", [])),
            "fingerprint": fingerprint(),
        },
        "networkInterfaces": [nic],
        "disks": [
            {
                "kind": "compute#attachedDisk",
                "type": "PERSISTENT",
                "mode": "READ_WRITE",
                "boot": True,
                "autoDelete": boot[0].get("autoDelete", True),
                "deviceName": boot[0].get("deviceName", name),
                "source": f"{zone_url}/disks/{name}",
                "diskSizeGb": str(params.get("diskSizeGb", "10")),
                "licenses": [image.replace("/images/", "/licenses/")],
            }
        ],
        "scheduling": scheduling,
        "guestAccelerators": [
            {
                "acceleratorType": f"{zone_url}/acceleratorTypes/"
                f"{_short(a.get('acceleratorType', ''), 'acceleratorTypes')}",
                "acceleratorCount": int(a.get("acceleratorCount", 1)),
            }
            for a in accelerators
        ],  # fmt: skip
        "serviceAccounts": list(body.get("serviceAccounts") or []),
        "fingerprint": fingerprint(),
        "startRestricted": False,
        "deletionProtection": False,
    }


def firewall(world: World, body: dict[str, Any]) -> dict[str, Any]:
    from fakegce.world import NAME, now_rfc3339

    name = body.get("name", "")
    if not re.fullmatch(NAME, name):
        raise _bad("resource.name", name, f"Must be a match of regex '{NAME}'")
    for rule in body.get("allowed", []) + body.get("denied", []):
        for port in rule.get("ports", []):
            if not re.fullmatch(r"\d{1,5}(-\d{1,5})?", port):
                raise _bad("resource.allowed[].ports", port, "Invalid port or port range.")
    network = body.get("network", "global/networks/default")
    return {**body, "kind": "compute#firewall", "id": str(next(world.ids)),
            "creationTimestamp": now_rfc3339(), "direction": body.get("direction", "INGRESS"),
            "priority": body.get("priority", 1000),
            "network": world.url("global", "networks", _short(network, "networks") or "default"),
            "selfLink": world.url("global", "firewalls", name)}  # fmt: skip
