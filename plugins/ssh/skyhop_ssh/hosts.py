"""Which cluster holds which host, and what each host has: ``<state_dir>/hosts.json``.

A host (``ip:port``) belongs to at most one cluster at a time. The file is read and
rewritten under an exclusive ``flock`` on ``hosts.lock``, so concurrent launches in one
server (or several servers sharing the persistent path) never hand out a host twice.
Each entry: ``{"cluster": NAME, "rank": R}``. ``facts`` caches what a probe found
(CPUs, memory, GPUs) so offers do not need to reconnect.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from typing import Any

from skyhop_core.paths import open_private, private_dir

STATE_FILE = "hosts.json"


class HostState:
    """The allocation and facts file of one backend state directory."""

    def __init__(self, state_dir: str) -> None:
        self.state_dir = state_dir
        self.path = os.path.join(state_dir, STATE_FILE)

    @contextlib.contextmanager
    def locked(self) -> Iterator[dict[str, Any]]:
        """Yield the state as a dict; changes made to it are saved on exit."""
        private_dir(self.state_dir)
        with open_private(os.path.join(self.state_dir, "hosts.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self._read()
            yield data
            tmp = self.path + ".tmp"
            with open_private(tmp, "w") as f:
                json.dump(data, f, indent=2, sort_keys=True)
            os.replace(tmp, self.path)

    def _read(self) -> dict[str, Any]:
        try:
            with open(self.path) as f:
                data = json.load(f)
        except (FileNotFoundError, json.JSONDecodeError):
            data = {}
        data.setdefault("hosts", {})
        data.setdefault("facts", {})
        return data

    def snapshot(self) -> dict[str, Any]:
        with self.locked() as data:
            return json.loads(json.dumps(data))

    def cluster_hosts(self, cluster: str) -> dict[str, int]:
        """Host key -> rank for every host ``cluster`` holds."""
        hosts = self.snapshot()["hosts"]
        return {k: int(v["rank"]) for k, v in hosts.items() if v.get("cluster") == cluster}

    def release(self, cluster: str, keys: list[str] | None = None) -> None:
        """Give back ``keys`` (default: every host) held by ``cluster``."""
        with self.locked() as data:
            for key, entry in list(data["hosts"].items()):
                if entry.get("cluster") == cluster and (keys is None or key in keys):
                    del data["hosts"][key]

    def record_facts(self, key: str, facts: dict[str, Any]) -> None:
        with self.locked() as data:
            data["facts"][key] = facts
