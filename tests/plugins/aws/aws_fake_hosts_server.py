"""Loaded into a test API server (``SKYHOP_PLUGINS=aws_fake_hosts_server``): the AWS
backend on moto whose instances are the fake sshd hosts described by
``$AWS_FAKE_HOSTS`` (a JSON pool spec, as ``FakeHosts.pool()`` returns).

The entry point's AWS plugin stays the one the server calls; only its provisioner's
``provision`` and ``down`` are wrapped, exactly as :class:`aws_on_fake_hosts.
FakeHostsAwsPlugin` wraps them in-process: a provisioned handle points at the fake hosts,
and terminating the instances also stops the agent on them (as losing the VMs would).
"""

from __future__ import annotations

import json
import os
from typing import Any

from aws_on_fake_hosts import on_fake_hosts, stop_agents

from skyhop_aws import plugin


class _Hosts:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec

    def pool(self) -> dict[str, Any]:
        return self.spec


_HOSTS = _Hosts(json.loads(os.environ["AWS_FAKE_HOSTS"]))
_provision = plugin.provisioner.provision
_down = plugin.provisioner.down


async def _provision_on_fake_hosts(ctx: Any, factory: Any, request: Any) -> Any:
    return on_fake_hosts(await _provision(ctx, factory, request), _HOSTS)


async def _down_and_stop_agents(ctx: Any, factory: Any, handle: Any) -> None:
    await stop_agents(ctx, handle, wipe=True)
    await _down(ctx, factory, handle)


plugin.provisioner.provision = _provision_on_fake_hosts
plugin.provisioner.down = _down_and_stop_agents
