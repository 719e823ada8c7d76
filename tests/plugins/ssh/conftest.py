"""Fixtures for the ssh backend tests: fake hosts in network namespaces."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ssh_netns import FakeHosts, unavailable


@pytest.fixture(scope="session")
def fake_hosts() -> Iterator[FakeHosts]:
    """Three hosts with their own sshd; removed after the session, even on failure."""
    reason = unavailable()
    if reason:
        pytest.skip(f"ssh backend tests need fake hosts: {reason}")
    hosts = FakeHosts(3)
    try:
        yield hosts
    finally:
        hosts.close()
