"""A service's versions as its controller sees them: each version's task, spec and
secrets (loaded once, cached), and what changes when the latest version moves on.

A new version whose task differs from the previous one only in ``service:`` (same
secrets) does not replace the running replicas: they are relabelled to it. One whose
replicas cannot come up (a replica not ready within its initial delay, or
:data:`MAX_PROVISION_FAILURES` failed launches) is *failed*: nothing more of it is
launched until the next ``serve update``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from skyhop_core.models.service_spec import ServiceSpec, parse_service
from skyhop_core.models.status import ReplicaStatus
from skyhop_core.serve import state as ss

if TYPE_CHECKING:
    from skyhop_core.serve.controller import ServiceController

R = ReplicaStatus
#: Failed launches of one version after which no more of it is launched.
MAX_PROVISION_FAILURES = 3


@attrs.frozen
class Version:
    """One version of a service: its task mapping (without secret values), the secrets,
    the parsed task and ``service:`` section, and its update mode."""

    number: int
    config: dict[str, Any]
    secrets: dict[str, str]
    task: Any
    spec: ServiceSpec
    mode: str

    @property
    def uses_spot(self) -> bool:
        return any(r.use_spot for r in self.task.resources)

    def without_service(self) -> dict[str, Any]:
        return {k: v for k, v in self.config.items() if k != "service"}


async def load(ctl: ServiceController, number: int) -> Version:
    """Version ``number`` of the controller's service, from its row and secrets file."""
    from skyhop_core.ops.common import parse_task

    row = await ctl.store_run(ss.version, ctl.name, number)
    config = dict(row.task)
    secrets = ctl.service.load_secrets(ctl.name, number)
    merged = {**config, "secrets": {**(config.get("secrets") or {}), **secrets}}
    task, _ = parse_task(merged if secrets else config)
    return Version(number, config, secrets, task, parse_service(config["service"]), row.mode)


async def on_new_version(ctl: ServiceController, row: Any, latest: Version) -> None:
    """The latest version moved to ``row.version``: follow its load-balancing policy and
    TLS certificate, and relabel the running replicas when only ``service:`` changed."""
    if latest.spec.load_balancing_policy != type(ctl.lb.policy).__name__:
        from skyhop_core.serve.policies import make_policy

        wanted = make_policy(latest.spec.load_balancing_policy)
        if type(wanted) is not type(ctl.lb.policy):
            wanted.in_flight = ctl.lb.policy.in_flight
            ctl.lb.policy = wanted
    if latest.spec.tls is not None:
        await ctl.use_certificate_of(latest.number)
    if row.version <= 1:
        return
    previous = await ctl.version(row.version - 1)
    if previous.without_service() == latest.without_service() \
            and previous.secrets == latest.secrets:
        moved = await ctl.store_run(ss.relabel, ctl.name, row.version - 1, row.version)
        if moved:
            ctl.log(f"Only the service section changed: {moved} replica(s) relabelled "
                    f"to version {row.version}.")
            if row.traffic_version is not None:
                await ctl.store_run(lambda c: ss.update(c, ctl.name,
                                                        traffic_version=row.version))


def version_failed(rows: list[Any], number: int) -> bool:
    """Whether version ``number`` cannot come up (see the module docstring)."""
    mine = [r for r in rows if r.version == number]
    if any(r.status == R.FAILED_INITIAL_DELAY.value for r in mine):
        return True
    return sum(r.status == R.FAILED_PROVISION.value for r in mine) >= MAX_PROVISION_FAILURES
