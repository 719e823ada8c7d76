"""A test backend with spot capacity: ``spotlocal``, local nodes sold as spot or not.

The serve tests load it into their API server with ``SKYHOP_PLUGINS=spotlocal``. It is
the local backend under another name (so its clusters are real local nodes that run the
replica app) whose one offer also has a spot price; a "preemption" is what it is on a
cloud: the node goes away under the replica (its processes killed), and
``skyhop_query`` says so.
"""

from __future__ import annotations

import attrs

from skyhop_core.context import BackendContext
from skyhop_core.hookspecs import hookimpl
from skyhop_core.models.records import BackendInfo, ClusterHandle, Feature, Offer, ProvisionRequest
from skyhop_core.models.resources import Resources
from skyhop_local import plugin as local
from skyhop_local.plugin import (  # noqa: F401  (the hooks this backend shares with local)
    skyhop_check,
    skyhop_command_runner,
    skyhop_down,
    skyhop_mount_host_path,
    skyhop_open_ports,
    skyhop_query,
    skyhop_start,
    skyhop_stop,
)

NAME = "spotlocal"


@hookimpl
def skyhop_backend_info() -> BackendInfo:
    info = local.skyhop_backend_info()
    return attrs.evolve(info, name=NAME, display_name="Local (spot)",
                        features=info.features | {Feature.SPOT})


@hookimpl
async def skyhop_offers(ctx: BackendContext, resources: Resources) -> list[Offer]:
    offer = attrs.evolve(await local.machine_offer(ctx.config), backend=NAME, spot_price=0.0)
    return [offer] if resources.fits(offer, pooled=True) else []


@hookimpl
async def skyhop_provision(ctx: BackendContext, request: ProvisionRequest) -> ClusterHandle:
    handle = await local.skyhop_provision(ctx, request)
    return attrs.evolve(handle, backend=NAME, use_spot=request.use_spot)
