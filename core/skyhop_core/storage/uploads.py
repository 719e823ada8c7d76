"""The upload store: the files clients send for their tasks, kept per user on disk.

A server never reads a client's path. The client sends a manifest (see
:mod:`skyhop_core.storage.manifest`), then the content the server lacks as blobs named by
their SHA-256, in resumable chunks; the server then *materialises* the upload as an
ordinary directory that the backends' runners sync to the nodes. Layout under the
persistent path::

    uploads/<user key>/blobs/<sha[:2]>/<sha>    one file per distinct content (0600)
    uploads/<user key>/partial/<sha>            a blob still arriving (its size = the offset)
    uploads/<user key>/trees/<id>.json          the manifest; its mtime is the last use
    uploads/<user key>/trees/<id>/              the materialised tree (only once complete)

``<user key>`` is a hash of the caller's user hash, so one user's uploads and blobs are
invisible to every other user (someone else's upload ID is simply not found).

Every method is blocking file I/O; callers in the server run them in a worker thread
(:meth:`UploadStore.run`). Writes go to temporary names and are renamed into place, so a
crash leaves nothing half-written under a final name; replicas sharing one volume can
use the same store.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, TypeVar

import trio

from skyhop_core.exceptions import UploadNotFoundError, UploadTooLargeError
from skyhop_core.storage import manifest as mf

T = TypeVar("T")

#: Largest chunk a client may PUT (under the 16 MiB body limit of ordinary routes).
MAX_CHUNK_BYTES = 8 * 1024 * 1024
#: Default limit on the total size of one upload (SKYHOP_UPLOAD_MAX_BYTES).
DEFAULT_MAX_BYTES = 1024**3
#: Default time an unused upload is kept (SKYHOP_UPLOAD_RETENTION_SECONDS): 7 days.
DEFAULT_RETENTION_SECONDS = 7 * 24 * 3600.0


class ChunkOffsetError(ValueError):
    """A chunk did not start where the partial blob ends; ``received`` says where it does."""

    def __init__(self, message: str, received: int) -> None:
        super().__init__(message)
        self.received = received


class UploadIncompleteError(ValueError):
    """An upload was completed (or used) before all of its blobs arrived."""


def max_bytes_from_env() -> int:
    return int(os.environ.get("SKYHOP_UPLOAD_MAX_BYTES", DEFAULT_MAX_BYTES))


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


class UploadStore:
    """Per-user manifests, blobs and materialised trees under ``<root>/uploads``."""

    def __init__(self, persistent_path: Path | str, *, max_bytes: int | None = None) -> None:
        self.root = Path(persistent_path) / "uploads"
        self.max_bytes = max_bytes_from_env() if max_bytes is None else max_bytes
        self.limiter = trio.CapacityLimiter(4)

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """Run a blocking store method in a worker thread (behind this store's limiter)."""
        return await trio.to_thread.run_sync(lambda: work(*args), limiter=self.limiter)

    # --- paths ---------------------------------------------------------------------

    def user_dir(self, user_hash: str) -> Path:
        key = hashlib.sha256(user_hash.encode()).hexdigest()[:24]
        return self.root / key

    def _blob(self, user_hash: str, sha: str) -> Path:
        return self.user_dir(user_hash) / "blobs" / sha[:2] / sha

    def _partial(self, user_hash: str, sha: str) -> Path:
        return self.user_dir(user_hash) / "partial" / sha

    def _meta(self, user_hash: str, upload_id: str) -> Path:
        if not mf.UPLOAD_ID_RE.match(upload_id):
            raise UploadNotFoundError(f"Upload {upload_id!r} is not an upload ID (32 hex digits).")
        return self.user_dir(user_hash) / "trees" / f"{upload_id}.json"

    def _load(self, user_hash: str, upload_id: str) -> dict[str, Any]:
        path = self._meta(user_hash, upload_id)
        try:
            return dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise UploadNotFoundError(
                f"Upload {upload_id} does not exist (or was garbage-collected after going "
                "unused). Submit the task again: the client uploads its files anew."
            ) from None

    # --- the protocol ----------------------------------------------------------------

    def register(self, user_hash: str, raw_manifest: Any) -> dict[str, Any]:
        """Record a manifest; return its ``upload_id`` and the blobs the server lacks.

        Raises:
            ManifestError: the manifest is malformed.
            UploadTooLargeError: its files total more than ``max_bytes``.
        """
        manifest = mf.normalise(raw_manifest)
        total = mf.total_bytes(manifest)
        if total > self.max_bytes:
            listed = ", ".join(
                f"{e['path']} ({mf.human_bytes(e['size'])})" for e in mf.biggest(manifest)
            )
            raise UploadTooLargeError(
                f"The files to upload total {mf.human_bytes(total)}, over this server's "
                f"limit of {mf.human_bytes(self.max_bytes)} (SKYHOP_UPLOAD_MAX_BYTES). "
                f"Biggest: {listed}. Exclude them with .skyignore (or .gitignore), or put "
                "large data in a bucket.",
                limit=self.max_bytes,
                total=total,
            )
        upload_id = mf.upload_id(manifest)
        wanted = sorted({e["sha256"] for e in mf.files(manifest)})
        missing = [sha for sha in wanted if not self._blob(user_hash, sha).exists()]
        meta_path = self._meta(user_hash, upload_id)
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            meta = json.loads(meta_path.read_text())
        except FileNotFoundError:
            meta = {"manifest": manifest, "state": "pending", "created": time.time()}
        partial = {}
        for sha in missing:
            with contextlib.suppress(FileNotFoundError):
                if size := self._partial(user_hash, sha).stat().st_size:
                    partial[sha] = size
        meta["new_blobs"] = len(missing)
        _atomic_write(meta_path, json.dumps(meta).encode())
        return {
            "upload_id": upload_id,
            "missing": missing,
            "partial": partial,
            "files": len(mf.files(manifest)),
            "bytes": total,
        }

    def blob_status(self, user_hash: str, sha: str) -> dict[str, Any]:
        """How much of a blob the server has: ``received`` bytes, ``complete``."""
        self._check_sha(sha)
        blob = self._blob(user_hash, sha)
        if blob.exists():
            return {"sha256": sha, "received": blob.stat().st_size, "complete": True}
        with contextlib.suppress(FileNotFoundError):
            return {"sha256": sha, "received": self._partial(user_hash, sha).stat().st_size,
                    "complete": False}  # fmt: skip
        return {"sha256": sha, "received": 0, "complete": False}

    def write_chunk(
        self, user_hash: str, sha: str, offset: int, size: int, data: bytes
    ) -> dict[str, Any]:
        """Append ``data`` at ``offset`` to the blob ``sha`` of ``size`` bytes in all.

        The blob becomes complete (and visible) when its last byte arrives and its
        content hashes to ``sha``.

        Raises:
            ChunkOffsetError: ``offset`` is not where the partial blob ends.
            ValueError: the content does not match ``sha`` (the partial is discarded),
                or ``size`` is out of range.
        """
        self._check_sha(sha)
        if not 0 <= size <= self.max_bytes:
            raise UploadTooLargeError(
                f"Blob {sha} of {mf.human_bytes(size)} is over this server's upload limit of "
                f"{mf.human_bytes(self.max_bytes)} (SKYHOP_UPLOAD_MAX_BYTES).",
                limit=self.max_bytes, total=size,
            )  # fmt: skip
        blob = self._blob(user_hash, sha)
        if blob.exists():
            return {"sha256": sha, "received": size, "complete": True}
        partial = self._partial(user_hash, sha)
        partial.parent.mkdir(parents=True, exist_ok=True)
        with open(partial, "ab") as f:
            fcntl.flock(f, fcntl.LOCK_EX)  # two clients of one user may send the same blob
            received = os.fstat(f.fileno()).st_size
            if offset != received:
                raise ChunkOffsetError(
                    f"Blob {sha}: the chunk starts at byte {offset}, but the server has "
                    f"{received} bytes; resume from {received}.",
                    received,
                )
            if received + len(data) > size:
                raise ValueError(f"Blob {sha}: the chunk runs past the blob's size ({size} bytes).")
            f.write(data)
            f.flush()
            received += len(data)
            if received == size:
                self._finish_blob(partial, blob, sha)
        return {"sha256": sha, "received": received, "complete": received == size}

    def write_pack(self, user_hash: str, index: Any, payload: bytes) -> dict[str, Any]:
        """Store several whole blobs sent in one body: ``index`` lists ``[sha, size]``
        in the order their bytes follow each other in ``payload``.

        Each blob is checked against its hash; none is stored under its name otherwise.

        Raises:
            ValueError: a malformed index, sizes that do not add up to the payload, or
                content that does not match its hash (nothing of that blob is kept).
        """
        if not isinstance(index, list) or not all(
            isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
            and isinstance(item[1], int) and not isinstance(item[1], bool) and item[1] >= 0
            for item in index
        ):  # fmt: skip
            raise ValueError('The pack index must be a list of ["<sha256>", <size>] pairs.')
        if sum(size for _, size in index) != len(payload):
            raise ValueError(
                f"The pack index names {sum(size for _, size in index)} bytes, but "
                f"{len(payload)} followed it."
            )
        for sha, _ in index:
            self._check_sha(sha)
        offset, stored = 0, 0
        for sha, size in index:
            data = payload[offset : offset + size]
            offset += size
            if hashlib.sha256(data).hexdigest() != sha:
                raise ValueError(
                    f"Blob {sha} in the pack does not hash to its name; send it again (was "
                    "the file changed while uploading?)."
                )
            blob = self._blob(user_hash, sha)
            if blob.exists():
                continue
            tmp = self._partial(user_hash, f"{sha}.{secrets.token_hex(4)}.pack")
            tmp.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            os.chmod(tmp, 0o600)
            blob.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, blob)
            stored += 1
        return {"stored": stored}

    def _finish_blob(self, partial: Path, blob: Path, sha: str) -> None:
        if _file_sha256(partial) != sha:
            partial.unlink(missing_ok=True)
            raise ValueError(
                f"Blob {sha}: the content received does not hash to its name; it was "
                "discarded. Send it again (was the file changed while uploading?)."
            )
        blob.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(partial, 0o600)
        os.replace(partial, blob)

    def complete(self, user_hash: str, upload_id: str) -> dict[str, Any]:
        """Materialise the upload (once all blobs are in); return its :meth:`info`.

        Raises:
            UploadNotFoundError: no such upload of this user.
            UploadIncompleteError: some blobs have not arrived.
        """
        meta = self._load(user_hash, upload_id)
        tree = self._meta(user_hash, upload_id).with_suffix("")
        if not tree.is_dir():
            self._materialise(user_hash, meta["manifest"], tree)
        meta["state"] = "ready"
        _atomic_write(self._meta(user_hash, upload_id), json.dumps(meta).encode())
        return self.info(user_hash, upload_id)

    def _materialise(self, user_hash: str, manifest: dict[str, Any], tree: Path) -> None:
        entries = manifest["entries"]
        missing = [e for e in mf.files(manifest) if not self._blob(user_hash, e["sha256"]).exists()]
        if missing:
            raise UploadIncompleteError(
                f"{len(missing)} file(s) of the upload have not been sent yet "
                f"(e.g. {missing[0]['path']}); send their blobs, then complete it again."
            )
        tmp = tree.with_name(f".{tree.name}.{secrets.token_hex(4)}.tmp")
        root = tmp / "root"
        try:
            root.mkdir(parents=True)
            for entry in entries:  # sorted by path: parents come before children
                target = root / entry["path"]
                if entry["type"] == "dir":
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                if entry["type"] == "symlink":
                    os.symlink(entry["target"], target)
                elif entry["executable"]:
                    shutil.copyfile(self._blob(user_hash, entry["sha256"]), target)
                    os.chmod(target, 0o700)
                else:  # blobs are 0600 and never written again: share their inode
                    os.link(self._blob(user_hash, entry["sha256"]), target)
            try:
                os.rename(tmp, tree)
            except OSError:
                if not tree.is_dir():  # else: another request materialised it first
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def info(self, user_hash: str, upload_id: str) -> dict[str, Any]:
        meta = self._load(user_hash, upload_id)
        manifest = meta["manifest"]
        return {
            "upload_id": upload_id,
            "kind": manifest["kind"],
            "state": meta.get("state", "pending"),
            "files": len(mf.files(manifest)),
            "bytes": mf.total_bytes(manifest),
            "new_blobs": meta.get("new_blobs", 0),
            "last_used": self._meta(user_hash, upload_id).stat().st_mtime,
        }

    def resolve(self, user_hash: str, upload_id: str) -> Path:
        """The materialised source to sync to nodes: the tree's directory, or for a
        ``file`` upload the file itself. Counts as a use (keeps it from GC)."""
        meta = self._load(user_hash, upload_id)
        root = self._meta(user_hash, upload_id).with_suffix("") / "root"
        if meta.get("state") != "ready" or not root.is_dir():
            raise UploadNotFoundError(
                f"Upload {upload_id} is not complete: the client has not sent all of its "
                "files. Submit the task again."
            )
        os.utime(self._meta(user_hash, upload_id))
        if meta["manifest"]["kind"] == "file":
            return root / meta["manifest"]["entries"][0]["path"]
        return root

    # --- garbage collection ----------------------------------------------------------

    def collect_garbage(
        self,
        retention_seconds: float,
        now: float | None = None,
        keep: Collection[tuple[str, str]] = (),
    ) -> dict[str, int]:
        """Delete uploads unused for ``retention_seconds`` except those ``keep`` names
        (``(user_hash, upload_id)``: what live managed jobs and services will sync
        again), then blobs no remaining upload names and partial blobs, once they too
        are that old."""
        now = time.time() if now is None else now
        cutoff = now - retention_seconds
        kept = {(self.user_dir(user_hash).name, upload) for user_hash, upload in keep}
        removed = {"uploads": 0, "blobs": 0, "partial": 0}
        if not self.root.is_dir():
            return removed
        for user in self.root.iterdir():
            trees = user / "trees"
            referenced: set[str] = set()
            for meta_path in trees.glob("*.json") if trees.is_dir() else []:
                try:
                    stale = meta_path.stat().st_mtime < cutoff
                    stale = stale and (user.name, meta_path.stem) not in kept
                    meta = json.loads(meta_path.read_text())
                except (OSError, ValueError):
                    continue
                if stale:
                    shutil.rmtree(meta_path.with_suffix(""), ignore_errors=True)
                    meta_path.unlink(missing_ok=True)
                    removed["uploads"] += 1
                else:
                    referenced.update(e["sha256"] for e in mf.files(meta["manifest"]))
            for blob in (user / "blobs").glob("*/*"):
                if blob.name not in referenced and _older(blob, cutoff):
                    blob.unlink(missing_ok=True)
                    removed["blobs"] += 1
            for partial in (user / "partial").glob("*"):
                if _older(partial, cutoff):
                    partial.unlink(missing_ok=True)
                    removed["partial"] += 1
        return removed

    @staticmethod
    def _check_sha(sha: str) -> None:
        if not mf.SHA256_RE.match(sha):
            raise UploadNotFoundError(f"Blob {sha!r} is not a SHA-256 (64 lowercase hex digits).")


def _older(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime < cutoff
    except OSError:
        return False
