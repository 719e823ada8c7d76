"""The ``aws`` backend plugin: EC2 instances reached over SSH.

:class:`AwsPlugin` implements the hooks; its one dependency, the boto3 client factory,
is passed in (tests inject a factory whose clients talk to moto and simulate errors).
The module itself is what the entry point registers: its hook functions are the bound
methods of a default instance that uses boto3's standard configuration. Nothing here
imports boto3 at import time; ``skyhop check`` without it says how to install it.

Config (``backends: {aws: ...}`` in the API server's config file): ``regions`` (list: restrict offers), ``image_id``
(str, or region -> AMI), ``ssh_user`` (default ``ubuntu``), ``poll_interval`` (seconds),
``ssh_wait_seconds`` (how long a new instance may take to answer SSH; default 600).
"""

from __future__ import annotations

from collections.abc import Sequence

import trio

from skyhop_aws import catalog, provisioner, runtime
from skyhop_aws.aws import ClientFactory, default_client_factory, in_thread
from skyhop_aws.runner import make_runner
from skyhop_core.context import BackendContext
from skyhop_core.exceptions import CredentialsError
from skyhop_core.hookspecs import hookimpl
from skyhop_core.models.records import (
    BackendInfo,
    CheckResult,
    ClusterHandle,
    Feature,
    NodeInfo,
    NodeStatus,
    Offer,
    ProvisionRequest,
)
from skyhop_core.models.resources import Resources
from skyhop_core.runner import CommandRunner
from skyhop_core.sdkcheck import missing_sdk_result

NAME = "aws"
#: Importable modules the backend needs, each with the distribution that provides it.
SDK_MODULES = {"boto3": "boto3"}
CREDENTIALS_FIX = (
    "Run `aws configure` (or set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)."
)
CHECK_REGION = "us-east-1"


def has_local_credentials(use_instance_metadata: bool) -> bool:
    """Whether boto3 finds credentials without asking the network.

    The instance-metadata and container providers are HTTP calls to link-local
    addresses; they are skipped unless the config allows them
    (``aws: {use_instance_metadata: true}`` on an EC2 machine with an instance role).
    """
    import botocore.session

    session = botocore.session.get_session()
    if not use_instance_metadata:
        resolver = session.get_component("credential_provider")
        for provider in ("iam-role", "container-role"):
            resolver.remove(provider)
    return session.get_credentials() is not None


def _caller_identity(factory: ClientFactory, region: str) -> str:
    return str(factory("sts", region).get_caller_identity()["Arn"])


class AwsPlugin:
    """The AWS backend's hooks, with the boto3 client factory injected."""

    def __init__(self, client_factory: ClientFactory = default_client_factory) -> None:
        self.client_factory = client_factory

    @hookimpl
    def skyhop_backend_info(self) -> BackendInfo:
        return BackendInfo(
            name=NAME,
            display_name="AWS",
            features=frozenset(
                {
                    Feature.STOP,
                    Feature.AUTOSTOP,
                    Feature.SPOT,
                    Feature.MULTI_NODE,
                    Feature.OPEN_PORTS,
                }  # fmt: skip
            ),
            description="Amazon Web Services EC2 instances, reached over SSH.",
        )

    @hookimpl
    async def skyhop_check(self, ctx: BackendContext) -> CheckResult:
        missing = missing_sdk_result(NAME, SDK_MODULES, NAME)
        if missing is not None:
            return missing
        use_imds = bool(ctx.config.get("use_instance_metadata", False))
        if not await trio.to_thread.run_sync(has_local_credentials, use_imds):
            return CheckResult(NAME, False, reason="No AWS credentials found.",
                               fix=CREDENTIALS_FIX)  # fmt: skip
        region = str(ctx.config.get("check_region", CHECK_REGION))
        try:
            arn = await in_thread(
                _caller_identity, self.client_factory, region, place=(region, None)
            )
        except CredentialsError as exc:
            return CheckResult(NAME, False, reason=str(exc), fix=CREDENTIALS_FIX)
        except Exception as exc:
            return CheckResult(NAME, False, reason=f"AWS STS check failed: {exc}",
                               fix=CREDENTIALS_FIX)  # fmt: skip
        return CheckResult(NAME, True, details={"identity": arn})

    @hookimpl
    async def skyhop_offers(self, ctx: BackendContext, resources: Resources) -> list[Offer]:
        offers = catalog.offers_for(resources)
        allowed = ctx.config.get("regions")
        if allowed:
            offers = [o for o in offers if o.region in set(allowed)]
        return offers

    @hookimpl
    async def skyhop_provision(
        self, ctx: BackendContext, request: ProvisionRequest
    ) -> ClusterHandle:
        return await provisioner.provision(ctx, self.client_factory, request)

    @hookimpl
    async def skyhop_setup_runtime(self, ctx: BackendContext, handle: ClusterHandle) -> None:
        """Wait for SSH, install the node agent on every instance, start it on the head."""
        await runtime.setup_runtime(ctx, handle)

    @hookimpl
    async def skyhop_stop(self, ctx: BackendContext, handle: ClusterHandle) -> None:
        await provisioner.stop(ctx, self.client_factory, handle)

    @hookimpl
    async def skyhop_start(self, ctx: BackendContext, handle: ClusterHandle) -> ClusterHandle:
        return await provisioner.start(ctx, self.client_factory, handle)

    @hookimpl
    async def skyhop_down(self, ctx: BackendContext, handle: ClusterHandle) -> None:
        await provisioner.down(ctx, self.client_factory, handle)

    @hookimpl
    async def skyhop_query(self, ctx: BackendContext, handle: ClusterHandle) -> list[NodeStatus]:
        return await provisioner.query(ctx, self.client_factory, handle)

    @hookimpl
    async def skyhop_open_ports(
        self, ctx: BackendContext, handle: ClusterHandle, ports: Sequence[int]
    ) -> ClusterHandle:
        return await provisioner.open_ports(ctx, self.client_factory, handle, ports)

    @hookimpl
    def skyhop_command_runner(
        self, ctx: BackendContext, handle: ClusterHandle, node: NodeInfo
    ) -> CommandRunner:
        return make_runner(ctx, node)


_DEFAULT = AwsPlugin()
# The entry point registers this module: its hooks are the default instance's.
skyhop_backend_info = _DEFAULT.skyhop_backend_info
skyhop_check = _DEFAULT.skyhop_check
skyhop_offers = _DEFAULT.skyhop_offers
skyhop_provision = _DEFAULT.skyhop_provision
skyhop_setup_runtime = _DEFAULT.skyhop_setup_runtime
skyhop_stop = _DEFAULT.skyhop_stop
skyhop_start = _DEFAULT.skyhop_start
skyhop_down = _DEFAULT.skyhop_down
skyhop_query = _DEFAULT.skyhop_query
skyhop_open_ports = _DEFAULT.skyhop_open_ports
skyhop_command_runner = _DEFAULT.skyhop_command_runner

# The ``s3`` store comes with the AWS backend (pluggy finds these hooks here).
from skyhop_aws.s3store import (  # noqa: E402, F401
    skyhop_store_create,
    skyhop_store_delete,
    skyhop_store_download,
    skyhop_store_exists,
    skyhop_store_info,
    skyhop_store_list,
    skyhop_store_mount_plan,
    skyhop_store_upload,
)
