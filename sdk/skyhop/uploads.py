"""The client side of uploads: a task's local files go to the API server first.

A task's ``workdir`` and local ``file_mounts`` sources are paths on *this* machine,
resolved (``.``, ``../proj``, ``~/data``) against the directory the client runs in. Before
a ``launch`` or ``exec`` is submitted, :func:`prepare_body` uploads each one and puts
``skyhop-upload://<id>`` in its place, so the request never names a client path:

1. :func:`scan` walks the source (honouring ``.skyignore``/``.gitignore``, see
   :mod:`skyhop.ignore`) and hashes every file (SHA-256) into a manifest;
2. the server answers which contents it lacks: an unchanged file is never sent twice;
3. small missing files go many to a request (a *pack*), big ones in chunks of at most
   8 MiB; after an error the client asks the server how much it has and resumes there;
4. the upload is completed, and the server materialises it for syncing to nodes.

Symlinks that stay inside the source are uploaded as links; a link to a file outside it
is uploaded as that file's content (the server cannot see it); other links (dangling,
or to a directory outside) are kept as links, as ``rsync -a`` would. Only the
executable bit of a file's mode is kept.

A progress line goes to stderr when more than :data:`PROGRESS_MIN_BYTES` are sent. File
hashes are cached between runs (:mod:`skyhop.hashcache`), so an unchanged big file is
not read again.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from typing import Any, Protocol, TextIO

import attrs

from skyhop.hashcache import HashCache
from skyhop.ignore import IgnoreRules
from skyhop_core import exceptions
from skyhop_core.storage import manifest as mf

#: Operations whose ``task`` names local files to upload.
UPLOAD_OPERATIONS = frozenset({"launch", "exec", "jobs_launch", "serve_up", "serve_update"})
#: Operations whose task's ``service.tls`` key and certificate are uploaded too.
SERVE_OPERATIONS = frozenset({"serve_up", "serve_update"})
#: Show progress when more than this many bytes are sent.
PROGRESS_MIN_BYTES = 4 * 1024 * 1024
#: Files up to this size go many to a body (``POST /api/uploads/pack``), bigger ones in
#: chunks of their own.
PACK_FILE_MAX_BYTES = 1024 * 1024
#: How many times a chunk is retried (asking the server where to resume) before giving up.
CHUNK_RETRIES = 5


class Caller(Protocol):
    """What the uploader needs of a client: one JSON call (:meth:`ApiClient.call`)."""

    def call(self, method: str, path: str, **kwargs: Any) -> Any: ...


@attrs.frozen
class Scanned:
    """A scanned source: its manifest and where each content lives on this machine."""

    path: str
    manifest: dict[str, Any]
    files_by_sha: dict[str, tuple[str, int]]  # sha -> (local path, size)


@attrs.frozen
class UploadResult:
    """One uploaded source: its ID, size and how many blobs (bytes) were sent."""

    upload_id: str
    files: int
    bytes: int
    blobs_sent: int
    bytes_sent: int


def resolve_source(path: str, field: str) -> str:
    """``path`` as an absolute path on this machine (``~`` and relative paths resolved
    against the current directory); raises TaskValidationError if it does not exist."""
    resolved = os.path.abspath(os.path.expanduser(path))
    if not os.path.exists(resolved):
        raise exceptions.TaskValidationError(
            f"{field}: {path!r} does not exist on this machine (resolved to {resolved}; "
            f"relative paths are resolved against the current directory {os.getcwd()}).",
            source="<task>", field=field, value=path,
        )  # fmt: skip
    return resolved


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_entry(
    rel: str, path: str, files_by_sha: dict[str, tuple[str, int]], cache: HashCache | None
) -> dict[str, Any]:
    st = os.stat(path)
    sha = cache.lookup(path, st) if cache is not None else None
    if sha is None:
        sha = _sha256(path)
        if cache is not None:
            cache.store(path, st, sha)
    files_by_sha.setdefault(sha, (path, st.st_size))
    return {"path": rel, "type": "file", "size": st.st_size, "sha256": sha,
            "executable": bool(st.st_mode & 0o111)}  # fmt: skip


def scan(path: str, cache: HashCache | None = None) -> Scanned:
    """The manifest of a file or directory (``path`` already resolved); ``cache``
    skips re-hashing files that did not change since they were last hashed."""
    files_by_sha: dict[str, tuple[str, int]] = {}
    real_root = os.path.realpath(path)
    if os.path.isfile(path):
        entry = _file_entry(os.path.basename(path), real_root, files_by_sha, cache)
        return Scanned(path, {"kind": "file", "entries": [entry]}, files_by_sha)
    rules = IgnoreRules(path)
    entries: list[dict[str, Any]] = []
    for dirpath, dirnames, filenames in os.walk(path):
        rel_dir = os.path.relpath(dirpath, path).replace(os.sep, "/")
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        rules.enter(rel_dir)
        if rel_dir:
            entries.append({"path": rel_dir[:-1], "type": "dir"})
        kept_dirs = []
        for name in sorted(dirnames):
            full = os.path.join(dirpath, name)
            if rules.ignored(rel_dir + name, True):
                continue
            if os.path.islink(full):  # os.walk does not descend into links: record it
                entries.append(_link_entry(rel_dir + name, full, real_root, files_by_sha, cache))
            else:
                kept_dirs.append(name)
        dirnames[:] = kept_dirs
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            if rules.ignored(rel_dir + name, False):
                continue
            if os.path.islink(full):
                entries.append(_link_entry(rel_dir + name, full, real_root, files_by_sha, cache))
            elif os.path.isfile(full):  # sockets, fifos and devices are not uploaded
                entries.append(_file_entry(rel_dir + name, full, files_by_sha, cache))
    return Scanned(path, {"kind": "dir", "entries": entries}, files_by_sha)


def _link_entry(
    rel: str,
    full: str,
    real_root: str,
    files_by_sha: dict[str, tuple[str, int]],
    cache: HashCache | None,
) -> dict[str, Any]:
    target = os.readlink(full)
    real = os.path.realpath(full)
    inside = real == real_root or real.startswith(real_root.rstrip("/") + "/")
    if not inside and os.path.isfile(real):
        return _file_entry(rel, real, files_by_sha, cache)
    return {"path": rel, "type": "symlink", "target": target}


class Progress:
    """A one-line byte counter on stderr (redrawn in place on a terminal)."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label, self.total, self.done = label, total, 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._last = 0.0
        self._started = time.monotonic()

    def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if self.tty and (now - self._last > 0.1 or self.done >= self.total):
            self._last = now
            percent = 100 * self.done // max(self.total, 1)
            self.stream.write(
                f"\rUploading {self.label}: {mf.human_bytes(self.done)} / "
                f"{mf.human_bytes(self.total)} ({percent}%)"
            )
            self.stream.flush()

    def finish(self) -> None:
        rate = self.done / max(time.monotonic() - self._started, 1e-6)
        start = "\r" if self.tty else ""
        self.stream.write(
            f"{start}Uploaded {self.label}: {mf.human_bytes(self.done)} "
            f"({mf.human_bytes(rate)}/s).\n"
        )
        self.stream.flush()


def _send_blob(
    client: Caller,
    sha: str,
    path: str,
    size: int,
    chunk_bytes: int,
    offset: int,
    progress: Progress | None,
) -> None:
    """Send one blob in chunks from ``offset`` (what the server already has)."""
    retries = CHUNK_RETRIES
    if progress is not None:
        progress.advance(offset)
    with open(path, "rb") as f:
        while offset < size or size == 0:
            f.seek(offset)
            data = f.read(min(chunk_bytes, size - offset))
            try:
                status = client.call(
                    "PUT", f"/api/uploads/blobs/{sha}", content=data,
                    params={"offset": offset, "size": size},
                )  # fmt: skip
            except exceptions.SkyhopError:
                # A broken connection or a chunk the server did not take: ask where the
                # server stands and resume from there.
                retries -= 1
                if retries < 0:
                    raise
                status = client.call("GET", f"/api/uploads/blobs/{sha}")
            received = int(status["received"])
            if progress is not None:
                progress.advance(received - offset)
            offset = received
            if status["complete"]:
                return


def _send_pack(
    client: Caller, blobs: list[tuple[str, str, int]], progress: Progress | None
) -> None:
    """Send whole small blobs ``(sha, path, size)`` in one body."""
    index = json.dumps([[sha, size] for sha, _, size in blobs], separators=(",", ":"))
    parts = [index.encode(), b"\n"]
    for _, path, _ in blobs:
        with open(path, "rb") as f:
            parts.append(f.read())
    client.call("POST", "/api/uploads/pack", content=b"".join(parts))
    if progress is not None:
        progress.advance(sum(size for _, _, size in blobs))


def _packs(
    blobs: list[tuple[str, str, int]], limit: int
) -> list[list[tuple[str, str, int]]]:
    """Group small blobs into bodies of at most ``limit`` bytes (index included)."""
    packs: list[list[tuple[str, str, int]]] = []
    current: list[tuple[str, str, int]] = []
    used = 2
    for blob in blobs:
        cost = blob[2] + len(blob[0]) + 24  # content plus its index entry
        if current and used + cost > limit:
            packs.append(current)
            current, used = [], 2
        current.append(blob)
        used += cost
    if current:
        packs.append(current)
    return packs


def _send_missing(
    client: Caller, scanned: Scanned, answer: dict[str, Any], progress: Progress | None
) -> None:
    chunk_bytes = int(answer["chunk_bytes"])
    partial = answer.get("partial") or {}
    small: list[tuple[str, str, int]] = []
    for sha in answer["missing"]:
        path, size = scanned.files_by_sha[sha]
        if size <= PACK_FILE_MAX_BYTES and sha not in partial:
            small.append((sha, path, size))
        else:
            offset = int(partial.get(sha, 0))
            _send_blob(client, sha, path, size, chunk_bytes, offset, progress)
    for pack in _packs(small, chunk_bytes):
        _send_pack(client, pack, progress)


def upload_source(
    client: Caller,
    path: str,
    *,
    label: str = "",
    progress_stream: TextIO | None = None,
    cache: HashCache | None = None,
) -> UploadResult:
    """Upload one resolved file or directory; returns what the server now has.

    Raises:
        TaskValidationError: a file under ``path`` cannot be read (naming it).
        UploadTooLargeError: the files are over the server's limit (nothing is sent).
    """
    try:
        scanned = scan(path, cache)
    except OSError as exc:
        raise exceptions.TaskValidationError(
            f"{label or path}: cannot read {exc.filename or path} ({exc.strerror or exc}); "
            "fix its permissions or leave it out with .skyignore/.gitignore.",
            source="<task>", field=label or None, value=str(exc.filename or path),
        ) from None  # fmt: skip
    for attempt in range(2):
        answer = client.call("POST", "/api/uploads", json=scanned.manifest)
        missing = [sha for sha in answer["missing"] if sha in scanned.files_by_sha]
        to_send = sum(scanned.files_by_sha[sha][1] for sha in missing)
        progress = None
        if to_send > PROGRESS_MIN_BYTES:
            progress = Progress(label or path, to_send, progress_stream)
        _send_missing(client, scanned, {**answer, "missing": missing}, progress)
        if progress is not None:
            progress.finish()
        try:
            client.call("POST", f"/api/uploads/{answer['upload_id']}/complete")
        except exceptions.SkyhopError:
            if attempt:  # a blob vanished (GC) between manifest and completion: once more
                raise
            continue
        return UploadResult(
            upload_id=answer["upload_id"], files=int(answer["files"]), bytes=int(answer["bytes"]),
            blobs_sent=len(missing), bytes_sent=to_send,
        )  # fmt: skip
    raise AssertionError("unreachable")  # pragma: no cover


def _upload_mount(upload: Any, remote: str, src: Any) -> Any:
    """A file mount with its local source(s) uploaded: a path, or a storage entry whose
    ``source`` is a local directory (or a list of local paths)."""
    field = f"file_mounts[{remote!r}]"
    if _is_local(src):
        return upload(src, field)
    if not isinstance(src, dict):
        return src
    source = src.get("source")
    if _is_local(source):
        return {**src, "source": upload(source, f"{field}.source")}
    if isinstance(source, list) and all(_is_local(s) for s in source):
        return {**src, "source": [upload(s, f"{field}.source[{i}]")
                                  for i, s in enumerate(source)]}
    return src


def _is_local(source: Any) -> bool:
    return isinstance(source, str) and "://" not in source


def _tasks_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The task mappings of a body: ``task``, or a pipeline's ``tasks``."""
    if isinstance(body.get("task"), dict):
        return [body["task"]]
    tasks = body.get("tasks")
    return [t for t in tasks if isinstance(t, dict)] if isinstance(tasks, list) else []


def needs_upload(operation: str, body: dict[str, Any]) -> bool:
    """Whether :func:`prepare_body` has anything to upload for this request."""
    if operation not in UPLOAD_OPERATIONS:
        return False
    for task in _tasks_of(body):
        mounts = task.get("file_mounts")
        sources: list[Any] = []
        for value in mounts.values() if isinstance(mounts, dict) else []:
            sources.extend(_storage_sources(value) if isinstance(value, dict) else [value])
        if operation in SERVE_OPERATIONS:
            sources.extend(_tls_sources(task))
        if any(_is_local(s) for s in [task.get("workdir"), *sources]):
            return True
    return False


def _tls_sources(task: dict[str, Any]) -> list[Any]:
    """A service's ``service.tls`` key and certificate files (uploaded like mounts)."""
    service = task.get("service")
    tls = service.get("tls") if isinstance(service, dict) else None
    return [tls.get(k) for k in ("keyfile", "certfile")] if isinstance(tls, dict) else []


def _storage_sources(storage: dict[str, Any]) -> list[Any]:
    """The local paths a storage entry (``{name, source, ...}``) would upload."""
    source = storage.get("source")
    return list(source) if isinstance(source, list) else [source]


def prepare_body(
    client: Caller,
    operation: str,
    body: dict[str, Any],
) -> dict[str, Any]:
    """``body`` with the task's (each pipeline task's) local workdir and file-mount
    sources uploaded and replaced by ``skyhop-upload://<id>`` (other operations are
    returned unchanged). A source named by several tasks is uploaded once."""
    if not needs_upload(operation, body):
        return body
    done: dict[str, str] = {}
    cache = HashCache()

    def upload(value: str, field: str) -> str:
        resolved = resolve_source(value, field)
        if field.startswith("service.tls.") and not os.path.isfile(resolved):
            raise exceptions.TaskValidationError(
                f"{field}: {value!r} ({resolved}) is not a file; name the PEM file.",
                source="<task>", field=field, value=value,
            )  # fmt: skip
        if field == "workdir" and not os.path.isdir(resolved):
            raise exceptions.TaskValidationError(
                f"workdir: {value!r} ({resolved}) is a file; the workdir must be a "
                "directory (use file_mounts for a single file).",
                source="<task>", field="workdir", value=value,
            )  # fmt: skip
        if resolved not in done:
            result = upload_source(client, resolved, label=field, cache=cache)
            done[resolved] = mf.upload_ref(result.upload_id)
        return done[resolved]

    def prepare(original: dict[str, Any]) -> dict[str, Any]:
        task = dict(original)
        if _is_local(task.get("workdir")):
            task["workdir"] = upload(task["workdir"], "workdir")
        mounts = task.get("file_mounts")
        if isinstance(mounts, dict):
            task["file_mounts"] = {
                remote: _upload_mount(upload, remote, src) for remote, src in mounts.items()
            }
        service = task.get("service")
        if operation in SERVE_OPERATIONS and isinstance(service, dict) \
                and isinstance(service.get("tls"), dict):
            tls = dict(service["tls"])
            for key in ("keyfile", "certfile"):
                if _is_local(tls.get(key)):
                    tls[key] = upload(tls[key], f"service.tls.{key}")
            task["service"] = {**service, "tls": tls}
        return task

    try:
        if isinstance(body.get("task"), dict):
            return {**body, "task": prepare(body["task"])}
        return {**body, "tasks": [prepare(t) for t in _tasks_of(body)]}
    finally:
        cache.save()
