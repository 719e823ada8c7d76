"""Fixtures for the ssh backend tests: fake hosts in network namespaces."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ssh_netns import FakeHosts, fake_hosts_or_skip


@pytest.fixture(scope="session")
def fake_hosts() -> Iterator[FakeHosts]:
    """Three hosts with their own sshd; removed after the session, even on failure."""
    with fake_hosts_or_skip(3) as hosts:
        yield hosts
