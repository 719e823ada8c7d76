"""The ``gcp`` backend plugin: Compute Engine VMs reached over SSH.

:class:`GcpPlugin` implements the hooks. Credentials are google-auth's (see
:mod:`skyhop_gcp.auth`); the Compute API is our own httpx client
(:mod:`skyhop_gcp.compute`). Nothing here imports google-auth at import time; ``skyhop
check`` without it says how to install it. The module itself is what the entry point
registers: its hook functions are the bound methods of a default instance.

Config (``gcp:`` in the config file's ``backends:`` section): ``project_id``,
``credentials_file``, ``use_metadata_server`` (on a GCE VM), ``regions`` (list: restrict
offers), ``image_id`` (str, or region -> image), ``ssh_user`` (default ``skyhop``),
``network`` (default ``default``), ``poll_interval``, ``ssh_wait_seconds``,
``compute_endpoint``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio

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

NAME = "gcp"
#: Importable modules the backend needs, each with the distribution that provides it.
SDK_MODULES = {"google.auth": "google-auth"}


class GcpPlugin:
    """The GCP backend's hooks. Credentials are loaded once per plugin and config, so a
    valid access token is reused across hook calls."""

    def __init__(self) -> None:
        self._credentials: dict[tuple[Any, ...], tuple[Any, str]] = {}

    def _load(self, ctx: BackendContext) -> tuple[Any, str]:
        import os

        from skyhop_gcp import auth

        path = auth.credentials_path(ctx.config)
        mtime = os.path.getmtime(path) if path and os.path.exists(path) else None
        key = (
            path,
            mtime,
            ctx.config.get("project_id"),
            bool(ctx.config.get("use_metadata_server")),
        )
        if key not in self._credentials:
            self._credentials[key] = auth.load(ctx.config)
        return self._credentials[key]

    @asynccontextmanager
    async def compute(self, ctx: BackendContext) -> AsyncIterator[Any]:
        from skyhop_gcp.compute import open_compute

        credentials, project = self._load(ctx)
        async with open_compute(ctx.config, credentials, project) as compute:
            yield compute

    @hookimpl
    def skyhop_backend_info(self) -> BackendInfo:
        return BackendInfo(
            name=NAME,
            display_name="GCP",
            features=frozenset(
                {
                    Feature.STOP,
                    Feature.AUTOSTOP,
                    Feature.SPOT,
                    Feature.MULTI_NODE,
                    Feature.OPEN_PORTS,
                }
            ),
            description="Google Cloud Compute Engine VMs, reached over SSH.",
        )

    @hookimpl
    async def skyhop_check(self, ctx: BackendContext) -> CheckResult:
        missing = missing_sdk_result(NAME, SDK_MODULES, NAME)
        if missing is not None:
            return missing
        from skyhop_gcp import auth, errors
        from skyhop_gcp.compute import GcpApiError

        try:
            async with self.compute(ctx) as compute:
                project = await compute.call("GET", "")
                account = compute.tokens.account()
        except CredentialsError as exc:
            return CheckResult(NAME, False, reason=str(exc), fix=auth.CREDENTIALS_FIX)
        except GcpApiError as exc:
            typed = errors.translate(exc)
            return CheckResult(NAME, False, reason=f"The Compute API check failed: {typed or exc}",
                               fix=auth.CREDENTIALS_FIX)  # fmt: skip
        return CheckResult(NAME, True, details={"project": str(project.get("name", "")),
                                                "account": account})  # fmt: skip

    @hookimpl
    async def skyhop_offers(self, ctx: BackendContext, resources: Resources) -> list[Offer]:
        from skyhop_gcp import catalog

        offers = catalog.offers_for(resources)
        allowed = ctx.config.get("regions")
        if allowed:
            offers = [o for o in offers if o.region in set(allowed)]
        return offers

    @hookimpl
    async def skyhop_provision(
        self, ctx: BackendContext, request: ProvisionRequest
    ) -> ClusterHandle:
        from skyhop_gcp import provisioner

        async with self.compute(ctx) as compute:
            return await provisioner.provision(ctx, compute, request)

    @hookimpl
    async def skyhop_setup_runtime(self, ctx: BackendContext, handle: ClusterHandle) -> None:
        """Wait for SSH, install the node agent on every instance, start it on the head."""
        from skyhop_ssh import vmsetup

        await vmsetup.setup_runtime(ctx, handle)

    @hookimpl
    async def skyhop_stop(self, ctx: BackendContext, handle: ClusterHandle) -> None:
        from skyhop_gcp import provisioner

        await self._close_ssh(ctx, handle)
        async with self.compute(ctx) as compute:
            await provisioner.stop(ctx, compute, handle)

    @hookimpl
    async def skyhop_start(self, ctx: BackendContext, handle: ClusterHandle) -> ClusterHandle:
        from skyhop_gcp import provisioner

        async with self.compute(ctx) as compute:
            return await provisioner.start(ctx, compute, handle)

    @hookimpl
    async def skyhop_down(self, ctx: BackendContext, handle: ClusterHandle) -> None:
        from skyhop_gcp import provisioner

        await self._close_ssh(ctx, handle)
        async with self.compute(ctx) as compute:
            await provisioner.down(ctx, compute, handle)

    @hookimpl
    async def skyhop_query(self, ctx: BackendContext, handle: ClusterHandle) -> list[NodeStatus]:
        from skyhop_gcp import provisioner

        async with self.compute(ctx) as compute:
            return await provisioner.query(ctx, compute, handle)

    @hookimpl
    async def skyhop_open_ports(
        self, ctx: BackendContext, handle: ClusterHandle, ports: Sequence[int]
    ) -> ClusterHandle:
        from skyhop_gcp import provisioner

        async with self.compute(ctx) as compute:
            return await provisioner.open_ports(ctx, compute, handle, ports)

    @hookimpl
    def skyhop_command_runner(
        self, ctx: BackendContext, handle: ClusterHandle, node: NodeInfo
    ) -> CommandRunner:
        from skyhop_ssh.vmsetup import make_runner

        return make_runner(ctx, node)

    async def _close_ssh(self, ctx: BackendContext, handle: ClusterHandle) -> None:
        """Close this process's SSH master connections to the nodes before they go away."""
        from skyhop_ssh.vmsetup import make_runner

        with trio.move_on_after(10):
            for node in handle.nodes:
                await make_runner(ctx, node).close()


_DEFAULT = GcpPlugin()
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

# The ``gcs`` store comes with the GCP backend (pluggy finds these hooks here).
from skyhop_gcp.gcsstore import (  # noqa: E402, F401
    skyhop_store_create,
    skyhop_store_delete,
    skyhop_store_download,
    skyhop_store_exists,
    skyhop_store_info,
    skyhop_store_list,
    skyhop_store_mount_plan,
    skyhop_store_upload,
)
