"""The manifest of an upload: what a client's workdir or file-mount source holds.

A manifest is what the client sends before any file content (``POST /api/uploads``)::

    {"kind": "dir" | "file",
     "entries": [
        {"path": "src/train.py", "type": "file", "size": 120, "sha256": "<hex>",
         "executable": false},
        {"path": "src", "type": "dir"},
        {"path": "latest", "type": "symlink", "target": "src/train.py"}]}

Encoding decisions:

- ``path`` is relative, ``/``-separated, without ``.``/``..`` parts; a ``file`` kind has
  exactly one ``file`` entry whose path is the source's base name.
- Content is named by its SHA-256, so the server stores each distinct content once per
  user and a client sends only what the server lacks.
- Only the executable bit of a file's mode travels (files materialise as 0700 or 0600, private like the rest of the persistent path):
  no setuid bits, no owner.
- Symlinks travel as links (their target text); nothing may sit *below* a symlink or a
  file, so materialising a manifest can never write outside its own directory.
- The upload ID is a hash of the normalised manifest: the same tree gives the same ID,
  so re-running an unchanged task re-uses what the server already has.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

KINDS = ("dir", "file")
ENTRY_TYPES = ("file", "dir", "symlink")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
UPLOAD_ID_RE = re.compile(r"^[0-9a-f]{32}$")
MAX_PATH = 4096
#: How a request names an upload where a task has a local path (workdir, file_mounts).
UPLOAD_SCHEME = "skyhop-upload://"
MAX_ENTRIES = 200_000

Entry = dict[str, Any]


class ManifestError(ValueError):
    """A manifest that is not well formed; the message names the entry and the field."""


def _check_path(path: Any, index: int) -> str:
    where = f"entries[{index}].path"
    if not isinstance(path, str) or not path or len(path) > MAX_PATH or "\0" in path:
        raise ManifestError(f"{where}: {path!r} must be a non-empty relative path.")
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ManifestError(
            f"{where}: {path!r} must be relative, '/'-separated, without '.' or '..' parts."
        )
    return path


def _normalise_entry(raw: Any, index: int) -> Entry:
    if not isinstance(raw, dict):
        raise ManifestError(f"entries[{index}] must be an object, not {type(raw).__name__}.")
    path = _check_path(raw.get("path"), index)
    kind = raw.get("type")
    if kind not in ENTRY_TYPES:
        raise ManifestError(f"entries[{index}].type: {kind!r} must be one of {ENTRY_TYPES}.")
    if kind == "dir":
        return {"path": path, "type": "dir"}
    if kind == "symlink":
        target = raw.get("target")
        if not isinstance(target, str) or not target or "\0" in target or len(target) > MAX_PATH:
            raise ManifestError(f"entries[{index}].target: {target!r} must be a link target.")
        return {"path": path, "type": "symlink", "target": target}
    size, digest = raw.get("size"), raw.get("sha256")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ManifestError(f"entries[{index}].size: {size!r} must be a byte count >= 0.")
    if not isinstance(digest, str) or not SHA256_RE.match(digest):
        raise ManifestError(f"entries[{index}].sha256: {digest!r} must be 64 lowercase hex digits.")
    return {
        "path": path,
        "type": "file",
        "size": size,
        "sha256": digest,
        "executable": bool(raw.get("executable", False)),
    }


def normalise(data: Any) -> dict[str, Any]:
    """Validate a manifest from the wire; return it with entries sorted by path.

    Raises:
        ManifestError: naming the first bad entry and field.
    """
    if not isinstance(data, dict):
        raise ManifestError('The manifest must be an object {"kind": ..., "entries": [...]}.')
    kind = data.get("kind")
    if kind not in KINDS:
        raise ManifestError(f"kind: {kind!r} must be 'dir' or 'file'.")
    raw_entries = data.get("entries")
    if not isinstance(raw_entries, list) or len(raw_entries) > MAX_ENTRIES:
        raise ManifestError(f"entries must be a list of at most {MAX_ENTRIES} entries.")
    entries = [_normalise_entry(raw, i) for i, raw in enumerate(raw_entries)]
    entries.sort(key=lambda e: e["path"])
    seen: set[str] = set()
    leaves: set[str] = set()  # files and symlinks: nothing may live below them
    for entry in entries:
        path = entry["path"]
        if path in seen:
            raise ManifestError(f"entries: {path!r} appears more than once.")
        seen.add(path)
        parts = path.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in leaves:
                raise ManifestError(f"entries: {path!r} lies below {parent!r}, which is not a directory.")
        if entry["type"] != "dir":
            leaves.add(path)
    if kind == "file" and (len(entries) != 1 or entries[0]["type"] != "file" or "/" in entries[0]["path"]):
        raise ManifestError("A 'file' manifest has exactly one file entry named by its base name.")
    return {"kind": kind, "entries": entries}


def upload_id(manifest: dict[str, Any]) -> str:
    """The content address of a normalised manifest (32 hex digits)."""
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def upload_ref(upload: str) -> str:
    """The value a request puts in place of a client path: ``skyhop-upload://<id>``."""
    return UPLOAD_SCHEME + upload


def parse_upload_ref(value: str) -> str | None:
    """The upload ID a ``skyhop-upload://<id>`` value names (None: it names none)."""
    if not isinstance(value, str) or not value.startswith(UPLOAD_SCHEME):
        return None
    return value[len(UPLOAD_SCHEME) :]


def files(manifest: dict[str, Any]) -> list[Entry]:
    return [e for e in manifest["entries"] if e["type"] == "file"]


def total_bytes(manifest: dict[str, Any]) -> int:
    return sum(e["size"] for e in files(manifest))


def biggest(manifest: dict[str, Any], count: int = 5) -> list[Entry]:
    """The ``count`` largest files, largest first."""
    return sorted(files(manifest), key=lambda e: -e["size"])[:count]


def human_bytes(size: float) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # pragma: no cover - the loop returns
