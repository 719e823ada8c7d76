"""Blocking EC2 calls, one small function per step; :mod:`skyhop_aws.provisioner` runs
them in worker threads.

Every function takes an EC2 client (``boto3.client("ec2", region_name=...)``); none
imports boto3. Instances of a cluster carry the tags ``skyhop-cluster`` (its name) and
``skyhop-rank`` (the node's rank; 0 is the head); its security group is named
``skyhop-<cluster>`` and tagged the same way.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from skyhop_aws.errors import error_code
from skyhop_core.paths import private_dir, write_private

CLUSTER_TAG = "skyhop-cluster"
RANK_TAG = "skyhop-rank"
USER_TAG = "skyhop-user"
#: Canonical's account: the owner of the official Ubuntu images.
UBUNTU_OWNER = "099720109477"
IMAGE_PATTERNS = (
    "ubuntu/images/hvm-ssd*/ubuntu-jammy-22.04-amd64-server-*",
    "ubuntu/images/hvm-ssd*/ubuntu-*-amd64-server-*",
)
LIVE_STATES = ("pending", "running", "stopping", "stopped")

Client = Any  # a boto3 EC2 client


def group_name(cluster: str) -> str:
    return f"skyhop-{cluster}"


def tag(instance: Mapping[str, Any], key: str) -> str | None:
    for item in instance.get("Tags", ()) or ():
        if item.get("Key") == key:
            return str(item.get("Value"))
    return None


def rank_of(instance: Mapping[str, Any]) -> int:
    value = tag(instance, RANK_TAG)
    return int(value) if value is not None and value.isdigit() else 1_000_000


def _instances(pages: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [i for page in pages for r in page.get("Reservations", ()) for i in r["Instances"]]


def cluster_instances(client: Client, cluster: str) -> list[dict[str, Any]]:
    """The cluster's instances that are not terminated, head first."""
    pages = client.get_paginator("describe_instances").paginate(
        Filters=[
            {"Name": f"tag:{CLUSTER_TAG}", "Values": [cluster]},
            {"Name": "instance-state-name", "Values": list(LIVE_STATES)},
        ]
    )
    return sorted(_instances(pages), key=lambda i: (rank_of(i), i["InstanceId"]))


def describe(client: Client, instance_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Instances by ID; IDs AWS no longer knows are missing from the result."""
    if not instance_ids:
        return {}
    try:
        pages = client.get_paginator("describe_instances").paginate(InstanceIds=list(instance_ids))
        return {i["InstanceId"]: i for i in _instances(pages)}
    except Exception as exc:
        if error_code(exc) != "InvalidInstanceID.NotFound":
            raise
    found = {}
    for instance_id in instance_ids:  # one unknown ID fails the batch: ask one by one
        try:
            response = client.describe_instances(InstanceIds=[instance_id])
        except Exception as exc:
            if error_code(exc) != "InvalidInstanceID.NotFound":
                raise
            continue
        found.update({i["InstanceId"]: i for i in _instances([response])})
    return found


def ensure_key_pair(client: Client, name: str, key_path: str) -> None:
    """Make sure key pair ``name`` exists in the region and its private key is local.

    The key is created by AWS the first time and written to ``key_path`` (mode 0600).
    In another region the same public key is imported.
    """
    existing = client.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [name]}])
    if existing.get("KeyPairs"):
        return
    if os.path.exists(key_path):  # created in another region: import its public half
        if not os.path.exists(key_path + ".pub"):
            with open(key_path) as f:
                public = _public_key(f.read())
            if public is None:
                raise LookupError(f"cannot derive the public key of {key_path}")
            write_private(key_path + ".pub", public)
        with open(key_path + ".pub", "rb") as f:
            client.import_key_pair(KeyName=name, PublicKeyMaterial=f.read())
        return
    created = client.create_key_pair(KeyName=name, KeyType="rsa")
    private_dir(os.path.dirname(key_path))
    write_private(key_path, created["KeyMaterial"])
    public = _public_key(created["KeyMaterial"])
    if public:
        write_private(key_path + ".pub", public)


def _public_key(private_pem: str) -> str | None:
    """The OpenSSH public key of a PEM private key (needs ``cryptography``; else None)."""
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError:
        return None
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )


def default_vpc(client: Client) -> str | None:
    vpcs = client.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    return str(vpcs[0]["VpcId"]) if vpcs else None


def find_security_group(client: Client, cluster: str) -> str | None:
    groups = client.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [group_name(cluster)]}]
    )["SecurityGroups"]
    return str(groups[0]["GroupId"]) if groups else None


def ensure_security_group(client: Client, cluster: str, ports: Iterable[int]) -> str:
    """The cluster's security group (created if missing) with SSH and ``ports`` open."""
    group_id = find_security_group(client, cluster)
    if group_id is None:
        kwargs: dict[str, Any] = {
            "GroupName": group_name(cluster),
            "Description": f"skyhop cluster {cluster}",
            "TagSpecifications": [
                {"ResourceType": "security-group", "Tags": [{"Key": CLUSTER_TAG, "Value": cluster}]}
            ],
        }
        vpc = default_vpc(client)
        if vpc:
            kwargs["VpcId"] = vpc
        group_id = str(client.create_security_group(**kwargs)["GroupId"])
    authorize_ports(client, group_id, [22, *ports])
    return group_id


def open_ports(client: Client, group_id: str) -> set[int]:
    """TCP ports the group already lets in from anywhere."""
    groups = client.describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
    opened: set[int] = set()
    for perm in groups[0].get("IpPermissions", ()) if groups else ():
        if perm.get("IpProtocol") in ("tcp", "-1") and "FromPort" in perm:
            opened.update(range(int(perm["FromPort"]), int(perm["ToPort"]) + 1))
    return opened


def authorize_ports(client: Client, group_id: str, ports: Iterable[int]) -> None:
    """Let TCP ``ports`` in from anywhere (ports already open are skipped)."""
    missing = sorted(set(ports) - open_ports(client, group_id))
    if not missing:
        return
    try:
        client.authorize_security_group_ingress(
            GroupId=group_id,
            IpPermissions=[
                {
                    "IpProtocol": "tcp",
                    "FromPort": p,
                    "ToPort": p,
                    "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": "skyhop"}],
                }
                for p in missing
            ],
        )
    except Exception as exc:
        if error_code(exc) != "InvalidPermission.Duplicate":
            raise


def delete_security_group(client: Client, cluster: str) -> bool:
    """Delete the cluster's security group; False while instances still hold it."""
    group_id = find_security_group(client, cluster)
    if group_id is None:
        return True
    try:
        client.delete_security_group(GroupId=group_id)
    except Exception as exc:
        code = error_code(exc)
        if code == "InvalidGroup.NotFound":
            return True
        if code == "DependencyViolation":
            return False
        raise
    return True


def choose_image(client: Client) -> str:
    """The newest official Ubuntu (amd64) image in the region."""
    for pattern in IMAGE_PATTERNS:
        images = client.describe_images(
            Owners=[UBUNTU_OWNER], Filters=[{"Name": "name", "Values": [pattern]}]
        )["Images"]
        if images:
            newest = max(images, key=lambda i: (i.get("CreationDate", ""), i["ImageId"]))
            return str(newest["ImageId"])
    raise LookupError("no Ubuntu image found; set image_id in the resources or config")


def run_instances(
    client: Client,
    *,
    cluster: str,
    user_hash: str,
    ranks: Sequence[int],
    image_id: str,
    instance_type: str,
    zone: str | None,
    key_name: str,
    group_id: str,
    use_spot: bool,
    disk_size: int | None,
) -> list[str]:
    """Launch one instance per rank in ``ranks``; return their IDs (rank order)."""
    tags = [
        {"Key": CLUSTER_TAG, "Value": cluster},
        {"Key": USER_TAG, "Value": user_hash},
        {"Key": "Name", "Value": f"skyhop-{cluster}"},
    ]
    kwargs: dict[str, Any] = {
        "ImageId": image_id,
        "InstanceType": instance_type,
        "MinCount": len(ranks),
        "MaxCount": len(ranks),
        "KeyName": key_name,
        "SecurityGroupIds": [group_id],
        "TagSpecifications": [{"ResourceType": "instance", "Tags": tags}],
    }
    if zone:
        kwargs["Placement"] = {"AvailabilityZone": zone}
    if use_spot:
        kwargs["InstanceMarketOptions"] = {
            "MarketType": "spot",
            "SpotOptions": {
                "SpotInstanceType": "one-time",
                "InstanceInterruptionBehavior": "terminate",
            },
        }
    if disk_size:
        kwargs["BlockDeviceMappings"] = [
            {"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": disk_size, "VolumeType": "gp3"}}
        ]
    instances = client.run_instances(**kwargs)["Instances"]
    ids = [str(i["InstanceId"]) for i in instances]
    for rank, instance_id in zip(ranks, ids, strict=True):
        client.create_tags(Resources=[instance_id], Tags=[{"Key": RANK_TAG, "Value": str(rank)}])
    return ids
