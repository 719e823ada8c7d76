"""Which uploads live managed jobs and services still name.

A managed job syncs its workdir and file mounts again on every recovery, and a service
on every new replica, possibly weeks after the client uploaded them: the upload garbage
collector keeps what these name, however long ago it was last used
(:meth:`skyhop_core.storage.uploads.UploadStore.collect_garbage`).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from skyhop_core.models.status import ManagedJobStatus
from skyhop_core.state.db import managed_jobs, service_versions, services
from skyhop_core.storage import manifest as mf


def uploads_in_use(conn: sa.Connection) -> set[tuple[str, str]]:
    """``(user_hash, upload_id)`` of every upload a task of a managed job that has not
    ended (each task of a pipeline) or of any version of a service names."""
    used: set[tuple[str, str]] = set()
    jobs = sa.select(managed_jobs.c.user_hash, managed_jobs.c.task, managed_jobs.c.tasks).where(
        managed_jobs.c.status.not_in(ManagedJobStatus.terminal_values())
    )
    for user_hash, task, tasks in conn.execute(jobs):
        used.update((user_hash, upload) for upload in _upload_ids([task, tasks]))
    versions = sa.select(services.c.user_hash, service_versions.c.task).join(
        service_versions, service_versions.c.service_name == services.c.name
    )
    for user_hash, task in conn.execute(versions):
        used.update((user_hash, upload) for upload in _upload_ids(task))
    return used


def _upload_ids(value: Any) -> list[str]:
    """The upload IDs anywhere in a task mapping (workdir, file mounts, storage sources,
    a service's TLS files)."""
    found: list[str] = []
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif (upload := mf.parse_upload_ref(item)) is not None:
            found.append(upload)
    return found
