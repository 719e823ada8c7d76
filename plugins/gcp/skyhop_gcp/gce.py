"""Compute Engine resources of a skyhop cluster: names, labels, request bodies, SSH key.

A cluster's instances are ``<id>-<rank>`` in one zone, labelled ``skyhop-cluster=<id>``,
``skyhop-rank=<rank>`` and ``skyhop-user=<user hash>``, and tagged ``skyhop-<id>``; the
firewall rule ``skyhop-<id>`` lets SSH and the task's ports in to that tag. ``<id>`` is
the cluster name when it is already a valid lowercase GCE name, else a cleaned-up name
with a short hash (GCE names and label values allow only ``[-a-z0-9]``).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from skyhop_core.context import BackendContext
from skyhop_core.paths import private_dir, write_private

CLUSTER_LABEL = "skyhop-cluster"
RANK_LABEL = "skyhop-rank"
USER_LABEL = "skyhop-user"
DEFAULT_IMAGE = "projects/ubuntu-os-cloud/global/images/family/ubuntu-2204-lts"
DEFAULT_DISK_GB = 256
#: skyhop ``disk_tier`` -> persistent disk type.
DISK_TYPES = {"low": "pd-standard", "medium": "pd-balanced", "high": "pd-ssd",
              "ultra": "pd-extreme", "best": "pd-ssd"}  # fmt: skip
_GCE_NAME = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")


def cluster_id(cluster: str) -> str:
    if len(cluster) <= 50 and _GCE_NAME.fullmatch(cluster):
        return cluster
    cleaned = re.sub(r"[^-a-z0-9]+", "-", cluster.lower()).strip("-")[:40] or "c"
    if not cleaned[0].isalpha():
        cleaned = "c-" + cleaned
    return f"{cleaned.rstrip('-')}-{hashlib.sha1(cluster.encode()).hexdigest()[:6]}"


def instance_name(cluster: str, rank: int) -> str:
    return f"{cluster_id(cluster)}-{rank}"


def network_tag(cluster: str) -> str:
    return f"skyhop-{cluster_id(cluster)}"[:63].rstrip("-")


def cluster_filter(cluster: str) -> str:
    return f'labels.{CLUSTER_LABEL} = "{cluster_id(cluster)}"'


def rank_of(instance: Mapping[str, Any]) -> int:
    value = str((instance.get("labels") or {}).get(RANK_LABEL, ""))
    return int(value) if value.isdigit() else 1_000_000


def ips(instance: Mapping[str, Any]) -> tuple[str, str]:
    """(external, internal) addresses; external is "" while the instance has none."""
    nic = (instance.get("networkInterfaces") or [{}])[0]
    configs = nic.get("accessConfigs") or [{}]
    return str(configs[0].get("natIP") or ""), str(nic.get("networkIP") or "")


def ssh_user(ctx: BackendContext) -> str:
    return str(ctx.config.get("ssh_user", "skyhop"))


def key_path(ctx: BackendContext) -> str:
    return os.path.join(
        ctx.ensure_state_dir(), "keys", f"skyhop-{(ctx.user_hash or 'default')[:8]}"
    )


def ensure_ssh_key(ctx: BackendContext) -> str:
    """The user's SSH public key for ``ssh-keys`` metadata (ed25519, made on first use)."""
    path = key_path(ctx)
    if not os.path.exists(path + ".pub"):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519

        key = ed25519.Ed25519PrivateKey.generate()
        private_dir(os.path.dirname(path))
        write_private(path, key.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.OpenSSH,
                                              serialization.NoEncryption()).decode())  # fmt: skip
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH).decode()  # fmt: skip
        write_private(path + ".pub", f"{public} skyhop\n")
    with open(path + ".pub") as f:
        return f.read().strip()


def instance_body(ctx: BackendContext, *, cluster: str, rank: int, zone: str,
                  machine_type: str, image: str, public_key: str, use_spot: bool,
                  accelerators: Sequence[Mapping[str, Any]], has_gpus: bool,
                  disk_size: int | None, disk_tier: str | None) -> dict[str, Any]:  # fmt: skip
    """The ``instances.insert`` body of rank ``rank``."""
    scheduling: dict[str, Any] = {}
    if has_gpus or use_spot:
        # GPUs cannot live-migrate; spot VMs are never migrated either.
        scheduling.update(onHostMaintenance="TERMINATE", automaticRestart=False)
    if use_spot:
        # A preempted spot VM is deleted: the cluster is gone, as for AWS spot.
        scheduling.update(provisioningModel="SPOT", instanceTerminationAction="DELETE")
    body: dict[str, Any] = {
        "name": instance_name(cluster, rank),
        "machineType": f"zones/{zone}/machineTypes/{machine_type}",
        "labels": {CLUSTER_LABEL: cluster_id(cluster), RANK_LABEL: str(rank),
                   USER_LABEL: (ctx.user_hash or "default")[:63].lower()},
        "tags": {"items": [network_tag(cluster)]},
        "metadata": {"items": [{"key": "ssh-keys", "value": f"{ssh_user(ctx)}:{public_key}"}]},
        "disks": [{
            "boot": True, "autoDelete": True,
            "initializeParams": {
                "sourceImage": image,
                "diskSizeGb": str(disk_size or DEFAULT_DISK_GB),
                "diskType": f"zones/{zone}/diskTypes/{DISK_TYPES.get(disk_tier or 'medium', 'pd-balanced')}",
            },
        }],
        "networkInterfaces": [{
            "network": f"global/networks/{ctx.config.get('network', 'default')}",
            "accessConfigs": [{"type": "ONE_TO_ONE_NAT", "name": "External NAT"}],
        }],
    }  # fmt: skip
    if scheduling:
        body["scheduling"] = scheduling
    if accelerators:
        body["guestAccelerators"] = [dict(a) for a in accelerators]
    return body


def firewall_body(ctx: BackendContext, cluster: str, ports: Iterable[int]) -> dict[str, Any]:
    return {
        "name": network_tag(cluster),
        "description": f"skyhop cluster {cluster}: SSH and its ports",
        "network": f"global/networks/{ctx.config.get('network', 'default')}",
        "direction": "INGRESS",
        "sourceRanges": ["0.0.0.0/0"],
        "targetTags": [network_tag(cluster)],
        "allowed": [{"IPProtocol": "tcp", "ports": [str(p) for p in sorted({22, *ports})]}],
    }


def allowed_ports(rule: Mapping[str, Any]) -> set[int]:
    opened: set[int] = set()
    for allowed in rule.get("allowed", ()):
        if allowed.get("IPProtocol") in ("tcp", "all"):
            for spec in allowed.get("ports", ()):
                low, _, high = str(spec).partition("-")
                opened.update(range(int(low), int(high or low) + 1))
    return opened
