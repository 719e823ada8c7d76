"""Listing, creating, deleting and waiting for a cluster's pods (lightkube, under trio).

Waiting uses a watch from the list's resourceVersion and reconnects on its own: the
server ends watches (``timeoutSeconds``), connections drop, and a version that got too
old (``410 Gone``) means relisting. (lightkube's own retry sleeps with asyncio, which
does not work under trio, so its watch is used with ``on_error_raise``.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from skyhop_kubernetes.errors import is_not_found
from skyhop_kubernetes.manifests import cluster_selector

#: Seconds of one watch request before the server ends it and we reconnect.
WATCH_SECONDS = 60
RECONNECT_PAUSE = 0.5


async def cluster_pods(client: Any, cluster: str) -> tuple[dict[str, Any], str]:
    """The cluster's pods by name (as dicts) and the list's resourceVersion."""
    from lightkube.resources.core_v1 import Pod

    pods: dict[str, Any] = {}
    listing = client.list(Pod, labels=_selector(cluster))
    async for pod in listing:
        pods[pod.metadata.name] = pod.to_dict()
    version = listing._resourceVersion or ""  # set once the iteration started
    return pods, version


def _selector(cluster: str) -> dict[str, str]:
    key, value = cluster_selector(cluster).split("=", 1)
    return {key: value}


async def wait_until(
    client: Any,
    cluster: str,
    done: Callable[[dict[str, Any]], bool],
    recheck: float | None = None,
) -> dict[str, Any]:
    """Watch the cluster's pods until ``done(pods_by_name)`` is true (or raises); return them.

    ``done`` is called on every change, and at least every ``recheck`` seconds when given
    (for conditions that depend on time); cancellation (the caller's deadline) stops it.
    """
    import httpx2
    from lightkube import ApiError
    from lightkube.resources.core_v1 import Pod

    while True:
        pods, version = await cluster_pods(client, cluster)
        if done(pods):
            return pods
        try:
            with trio.move_on_after(recheck if recheck is not None else float("inf")):
                async for kind, pod in client.watch(
                    Pod, labels=_selector(cluster), resource_version=version or None,
                    server_timeout=WATCH_SECONDS,
                ):  # fmt: skip
                    name = pod.metadata.name
                    if kind == "DELETED":
                        pods.pop(name, None)
                    else:
                        pods[name] = pod.to_dict()
                    if done(pods):
                        return pods
        except (httpx2.TransportError, httpx2.HTTPStatusError, ApiError) as exc:
            if isinstance(exc, ApiError) and exc.status.code not in (410, 500, 503, 504):
                raise
            # A dropped connection or a 410: pause, relist and go on.
            await trio.sleep(RECONNECT_PAUSE)
        # The watch ended (server timeout, recheck): relist and go on.


async def delete_quietly(client: Any, kind: Any, name: str) -> None:
    """Delete ``name``; one that is already gone is fine."""
    try:
        await client.delete(kind, name, grace_period=5)
    except Exception as exc:
        if not is_not_found(exc):
            raise
