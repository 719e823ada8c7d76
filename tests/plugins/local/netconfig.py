"""A node-network configuration of the tests' own: bridge, subnet and address registry.

The local backend's default (``skyhop0``, ``10.147.0.0/16``, ``/run/skyhop-local``) is the
host's; tests use a bridge named after their process, a /24 picked from their pid, and a
registry in a temporary directory, and remove the bridge when they are done.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from typing import Any

NETWORK_ENV = "SKYHOP_LOCAL_NETWORK"


@contextlib.contextmanager
def node_network_config() -> Iterator[dict[str, Any]]:
    """The ``local`` config section turning node networks on, for one test session."""
    bridge = f"skt{os.getpid() % 100000}"
    with tempfile.TemporaryDirectory(prefix="skyhop-addresses-") as registry:
        yield {
            "network": {
                "enabled": "on",
                "bridge": bridge,
                "subnet": f"10.149.{os.getpid() % 250}.0/24",
                "registry": registry,
                "egress": "none",  # tests make no traffic beyond their own namespaces
            }
        }
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)
