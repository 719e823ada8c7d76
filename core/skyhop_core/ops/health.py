"""Cluster states that tell the truth: a dead runtime, an interrupted operation.

Two things make an UP cluster INIT, each with a reason ``skyhop status`` shows:

- Its runtime died: :func:`check_runtime` asks the backend (``skyhop_runtime_health``;
  by default the node agent, which marks the jobs of a dead daemon FAILED_DRIVER). The
  server's health watcher runs it for every UP cluster, ``status --refresh`` too.
- A request that was changing it (launch, start, stop, down) is over without having
  finished — it failed, was cancelled, or its server was killed. The operation records
  each phase in the cluster's ``metadata["operation"]`` while it runs;
  :func:`settle_interrupted` turns a stale one into INIT and a reason. ``launch`` marks
  a cluster UP only once its files are synced, ``down`` makes it INIT before tearing it
  down, so what a dead server leaves behind is INIT, and the next ``down`` finishes it.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from skyhop_core.exceptions import NotSupportedError
from skyhop_core.models.records import ClusterRecord, RuntimeHealth
from skyhop_core.models.status import ClusterStatus, RequestStatus
from skyhop_core.services import Services
from skyhop_core.state import clusters as cl
from skyhop_core.state import requests as rq

#: What to do about an interrupted operation, by operation.
_NEXT_STEP = {
    "launch": "run `skyhop launch -c {name}` (or `skyhop start {name}`) again, or `skyhop down {name}`",
    "start": "run `skyhop start {name}` again, or `skyhop down {name}`",
    "stop": "run `skyhop stop {name}` again to finish it, or `skyhop down {name}`",
    "down": "run `skyhop down {name}` again to finish it",
}


def reason_of(record: ClusterRecord) -> str:
    """Why the cluster is in its status ('' when nothing is recorded)."""
    operation = record.metadata.get("operation")
    if operation:
        return f"{operation['op']} in progress: {operation['phase']}"
    return str(record.metadata.get("status_reason") or "")


async def check_runtime(services: Services, record: ClusterRecord) -> ClusterRecord:
    """Ask the backend whether the UP cluster's runtime works; INIT (and why) if not."""
    if record.status is not ClusterStatus.UP or record.handle is None:
        return record
    ctx = services.backend_ctx(record.backend)
    try:
        health: RuntimeHealth = await services.backends.call(
            record.backend, "skyhop_runtime_health", ctx=ctx, handle=record.handle
        )
    except NotSupportedError:
        return record
    if health.healthy:
        return record
    reason = (
        f"{health.reason}. Run `skyhop start {record.name}` to restart the runtime, "
        f"or `skyhop down {record.name}`."
    )
    changed = await services.store.run(
        lambda c: cl.mark_init(c, record.name, reason, only_from=ClusterStatus.UP)
    )
    if not changed:  # an operation changed the cluster meanwhile: it knows better
        current: ClusterRecord | None = await services.store.run(cl.get, record.name)
        return current or record
    meta = {**record.metadata, "status_reason": reason}
    meta.pop("operation", None)
    return attrs.evolve(record, status=ClusterStatus.INIT, metadata=meta)


async def settle_interrupted(
    services: Services, records: Sequence[ClusterRecord]
) -> list[ClusterRecord]:
    """Records with every operation whose request is over (but which never finished)
    turned into INIT and a reason."""
    settled = []
    for record in records:
        operation = record.metadata.get("operation")
        if not operation:
            settled.append(record)
            continue
        row = None
        if operation.get("request_id"):
            row = await services.store.run(rq.get_row, operation["request_id"])
        if row is not None and RequestStatus(row.status) in (
            RequestStatus.PENDING,
            RequestStatus.RUNNING,
        ):
            settled.append(record)  # still running
            continue
        how = "was interrupted"
        if row is not None:
            error = row.error or {}
            how = {
                RequestStatus.CANCELLED: "was cancelled",
                RequestStatus.FAILED: "failed",
            }.get(RequestStatus(row.status), "ended")
            if error.get("type") == "ServerRestartedError":
                how = "was interrupted: its API server stopped"
            elif error:
                how += f" ({error.get('type')}: {error.get('message')})"
        step = _NEXT_STEP.get(operation["op"], "run `skyhop down {name}`").format(name=record.name)
        reason = f"{operation['op']} {how} while {operation['phase']}; {step}"
        request_id = operation.get("request_id")
        changed = await services.store.run(
            lambda c, r=reason, n=record.name, q=request_id: cl.mark_init(c, n, r, only_request=q)
        )
        if not changed:  # another request took the cluster over meanwhile
            current: ClusterRecord | None = await services.store.run(cl.get, record.name)
            settled.append(current or record)
            continue
        meta = {k: v for k, v in record.metadata.items() if k != "operation"}
        meta["status_reason"] = reason
        settled.append(attrs.evolve(record, status=ClusterStatus.INIT, metadata=meta))
    return settled
