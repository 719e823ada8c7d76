"""A hook that gains an argument keeps working with plugins written before it: the core
passes an implementation only the arguments it names (pluggy's rule), here
``skyhop_idle_seconds``'s ``wait_for`` (0.2) to a 0.1 plugin and to a current one."""

from __future__ import annotations

from typing import Any

import trio

from skyhop_core.context import BackendContext
from skyhop_core.hookspecs import hookimpl
from skyhop_core.models.records import BackendInfo
from skyhop_core.plugins import load_backends


class Older:
    """Written against 0.1: no ``wait_for``."""

    @hookimpl
    def skyhop_backend_info(self) -> BackendInfo:
        return BackendInfo(name="older", display_name="Older")

    @hookimpl
    async def skyhop_idle_seconds(self, ctx: BackendContext, handle: Any) -> float:
        return 7.0


class Current:
    def __init__(self) -> None:
        self.asked: list[str] = []

    @hookimpl
    def skyhop_backend_info(self) -> BackendInfo:
        return BackendInfo(name="current", display_name="Current")

    @hookimpl
    async def skyhop_idle_seconds(self, ctx: BackendContext, handle: Any, wait_for: str) -> float:
        self.asked.append(wait_for)
        return 0.0 if wait_for == "jobs_and_ssh" else 3.0


def test_each_implementation_gets_the_arguments_it_names() -> None:
    current = Current()
    backends = load_backends([Older(), current], entry_points=False)
    ctx = BackendContext(state_dir="/nonexistent", persistent_path="/nonexistent")

    async def idle(backend: str, wait_for: str) -> float:
        return await backends.call(backend, "skyhop_idle_seconds", ctx=ctx, handle=None,
                                   wait_for=wait_for)  # fmt: skip

    assert trio.run(idle, "older", "jobs_and_ssh") == 7.0
    assert trio.run(idle, "current", "jobs_and_ssh") == 0.0
    assert trio.run(idle, "current", "jobs") == 3.0
    assert current.asked == ["jobs_and_ssh", "jobs"]
