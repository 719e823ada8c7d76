"""What of a parsed task can run here: the launch-time refusals.

Every valid SkyPilot task file parses (nothing is refused at parse time); the parts
skyhop cannot run yet are refused here, when a launch, exec or managed job is
submitted, each with a message naming the field and what to do instead.
"""

from __future__ import annotations

from typing import Any

from skyhop_core.exceptions import NotSupportedError


def check_runnable(task: Any) -> None:
    """Raise NotSupportedError for the first part of ``task`` that cannot run here."""
    if getattr(task, "pool", None) is not None:
        raise NotSupportedError(
            "pool: worker pools are not supported yet. The task was parsed and kept as "
            "written; launch it without the `pool:` section (or as a managed job)."
        )
    if getattr(task, "event_callback", None) is not None:
        raise NotSupportedError(
            "event_callback: job event callbacks are not supported yet; remove "
            "`event_callback:` (or run the script at the end of `run:`)."
        )
    for path, storage in (getattr(task, "storage_mounts", None) or {}).items():
        if storage.is_volume:
            raise NotSupportedError(
                f"file_mounts[{path!r}]: a volume (store: volume) is not supported yet; "
                "use a storage mount (store: local or s3) instead."
            )
