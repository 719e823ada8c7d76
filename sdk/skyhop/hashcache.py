"""A client-side cache of file hashes, so re-running a task does not re-read big files.

Uploading names every file by its SHA-256; hashing a large dataset on every ``exec``
would cost seconds. A file whose path, size, modification time (ns) and inode are what
they were when it was hashed keeps its hash, as git's index does. A file modified within
:data:`RACY_SECONDS` of hashing is not cached ("racily clean" in git's terms: a second
edit in the same clock tick would not change its mtime).

The cache is one JSON file under the client's persistent path
(``client/hash-cache.json``), replaced atomically; a damaged or missing file just means
hashing again. It keeps at most :data:`MAX_ENTRIES` files.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

RACY_SECONDS = 2.0
MAX_ENTRIES = 100_000


def cache_file() -> Path:
    from skyhop_core.paths import persistent_path

    return persistent_path() / "client" / "hash-cache.json"


class HashCache:
    """``lookup``/``store`` by path and ``os.stat`` result; :meth:`save` writes it back."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_file()
        self._entries: dict[str, list[Any]] = {}
        self._used: set[str] = set()
        self._dirty = False
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(self.path.read_text())
            if isinstance(data, dict):
                self._entries = data

    @staticmethod
    def _key(st: os.stat_result) -> list[Any]:
        return [st.st_size, st.st_mtime_ns, st.st_ino]

    def lookup(self, path: str, st: os.stat_result) -> str | None:
        entry = self._entries.get(path)
        if isinstance(entry, list) and len(entry) == 4 and entry[:3] == self._key(st):
            self._used.add(path)
            return str(entry[3])
        return None

    def store(self, path: str, st: os.stat_result, sha: str) -> None:
        if time.time() - st.st_mtime_ns / 1e9 < RACY_SECONDS:
            return
        self._entries[path] = [*self._key(st), sha]
        self._used.add(path)
        self._dirty = True

    def save(self) -> None:
        """Write the cache if it changed (best effort: a read-only home just skips it)."""
        if not self._dirty:
            return
        if len(self._entries) > MAX_ENTRIES:  # keep what this run used, then any others
            kept = {p: self._entries[p] for p in self._used if p in self._entries}
            for p, e in self._entries.items():
                if len(kept) >= MAX_ENTRIES:
                    break
                kept.setdefault(p, e)
            self._entries = kept
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
            tmp.write_text(json.dumps(self._entries, separators=(",", ":")))
            os.replace(tmp, self.path)
        self._dirty = False
