"""The AUTOSTOPPING step of an autostop: the cluster's autostop hook, then the stop/down.

When the server's autostop loop finds a cluster idle past its setting, it submits a
``stop`` (or ``down``) request marked ``from_autostop``. That request, holding the
cluster's lock, calls :func:`autostopping` first: the cluster becomes AUTOSTOPPING, the
hook (``resources.autostop.hook``) runs on the head node with ``hook_timeout`` seconds
(default :data:`DEFAULT_HOOK_TIMEOUT`, SkyPilot's), its output in the request's log, and
whatever it ends with — success, a failure, the timeout — the stop goes on, as SkyPilot's
does. A launch, start or exec meanwhile waits for the cluster lock; a user's own
``stop``/``down`` cancels the autostop request and takes over.
"""

from __future__ import annotations

import trio

from skyhop_core.models.records import ClusterRecord
from skyhop_core.models.status import ClusterStatus
from skyhop_core.ops.common import backend_ctx
from skyhop_core.ops.provisioning import set_phase
from skyhop_core.requests.context import RequestContext

DEFAULT_HOOK_TIMEOUT = 3600


async def autostopping(ctx: RequestContext, record: ClusterRecord) -> bool:
    """Mark the cluster AUTOSTOPPING and run its hook; False (do nothing) when the
    cluster is no longer UP or its autostop was cancelled meanwhile."""
    if record.status is not ClusterStatus.UP or record.autostop < 0 or record.handle is None:
        ctx.log(f"Cluster {record.name!r} is {record.status.value} now; autostop skipped.")
        return False
    options = dict(record.metadata.get("autostop_options") or {})
    hook = options.get("hook")
    phase = "running the autostop hook" if hook else "autostopping"
    await set_phase(ctx, record.name, phase, ClusterStatus.AUTOSTOPPING)
    ctx.log(f"⚙︎ Autostopping cluster {record.name!r} (idle for {record.autostop} minute(s)).")
    if hook:
        await _run_hook(ctx, record, str(hook), int(options.get("hook_timeout") or DEFAULT_HOOK_TIMEOUT))
    return True


async def _run_hook(ctx: RequestContext, record: ClusterRecord, hook: str, timeout: int) -> None:
    handle = record.handle
    assert handle is not None
    runner = ctx.services.runner(backend_ctx(ctx, record.backend), handle, handle.head)

    async def output(data: bytes) -> None:
        ctx.write(data)

    ctx.log(f"⚙︎ Running the autostop hook on the head node (timeout {timeout} s).")
    code: int | None = None
    with trio.move_on_after(timeout) as scope:
        code = await runner.stream(["bash", "-c", hook], output, env={"HOME": handle.head.home})
    if scope.cancelled_caught:
        ctx.log(f"✗ The autostop hook did not finish within {timeout} s; it was killed. Stopping anyway.")
    elif code:
        ctx.log(f"✗ The autostop hook exited with code {code}. Stopping anyway.")
    else:
        ctx.log("✔ The autostop hook finished.")
