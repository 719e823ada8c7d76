"""The upload store on disk: per-user blobs, materialised trees, garbage collection."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from skyhop_core.exceptions import UploadNotFoundError
from skyhop_core.storage.uploads import ChunkOffsetError, UploadIncompleteError, UploadStore


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entry(path: str, data: bytes, executable: bool = False) -> dict[str, object]:
    return {"path": path, "type": "file", "size": len(data), "sha256": sha(data),
            "executable": executable}  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> UploadStore:
    return UploadStore(tmp_path, max_bytes=1 << 20)


def upload(store: UploadStore, user: str, files: dict[str, bytes], **modes: bool) -> str:
    manifest = {"kind": "dir", "entries": [entry(p, d, modes.get(p.replace(".", "_"), False))
                                           for p, d in files.items()]}  # fmt: skip
    answer = store.register(user, manifest)
    by_sha = {sha(d): d for d in files.values()}
    for missing in answer["missing"]:
        store.write_chunk(user, missing, 0, len(by_sha[missing]), by_sha[missing])
    store.complete(user, answer["upload_id"])
    return str(answer["upload_id"])


def test_materialised_tree_keeps_content_exec_bit_and_links(store: UploadStore) -> None:
    manifest = {"kind": "dir", "entries": [
        entry("bin/run.sh", b"#!/bin/sh\necho hi\n", executable=True),
        entry("data.txt", b"data"),
        {"path": "empty", "type": "dir"},
        {"path": "latest", "type": "symlink", "target": "data.txt"},
    ]}  # fmt: skip
    answer = store.register("alice", manifest)
    assert len(answer["missing"]) == 2
    for e in manifest["entries"][:2]:
        data = b"#!/bin/sh\necho hi\n" if e["path"] == "bin/run.sh" else b"data"
        store.write_chunk("alice", str(e["sha256"]), 0, len(data), data)
    store.complete("alice", answer["upload_id"])
    root = store.resolve("alice", answer["upload_id"])
    assert (root / "data.txt").read_bytes() == b"data"
    assert os.access(root / "bin/run.sh", os.X_OK) and not os.access(root / "data.txt", os.X_OK)
    assert (root / "empty").is_dir() and os.readlink(root / "latest") == "data.txt"


def test_another_users_upload_is_not_found(store: UploadStore) -> None:
    upload_id = upload(store, "alice", {"a.txt": b"secret"})
    with pytest.raises(UploadNotFoundError):
        store.resolve("bob", upload_id)
    # Bob registering the same content must send it himself: blobs are per user.
    answer = store.register("bob", {"kind": "dir", "entries": [entry("a.txt", b"secret")]})
    assert answer["missing"] == [sha(b"secret")]


def test_chunks_resume_and_bad_content_is_discarded(store: UploadStore) -> None:
    data = b"0123456789"
    store.register("u", {"kind": "dir", "entries": [entry("f", data)]})
    assert store.write_chunk("u", sha(data), 0, 10, data[:4])["received"] == 4
    with pytest.raises(ChunkOffsetError) as info:
        store.write_chunk("u", sha(data), 0, 10, data[:4])
    assert info.value.received == 4
    assert store.blob_status("u", sha(data)) == {"sha256": sha(data), "received": 4,
                                                  "complete": False}  # fmt: skip
    assert store.write_chunk("u", sha(data), 4, 10, data[4:])["complete"] is True
    with pytest.raises(ValueError, match="does not hash"):
        store.write_chunk("u", sha(b"other!"), 0, 6, b"forged")
    assert store.blob_status("u", sha(b"other!"))["received"] == 0


def test_completing_before_all_blobs_arrive_is_refused(store: UploadStore) -> None:
    answer = store.register("u", {"kind": "dir", "entries": [entry("f", b"abc")]})
    with pytest.raises(UploadIncompleteError, match="1 file"):
        store.complete("u", answer["upload_id"])
    with pytest.raises(UploadNotFoundError, match="not complete"):
        store.resolve("u", answer["upload_id"])


def test_gc_deletes_unused_uploads_and_their_blobs_only(store: UploadStore) -> None:
    old = upload(store, "u", {"old.txt": b"old", "shared.txt": b"shared"})
    time.sleep(0.05)
    fresh = upload(store, "u", {"new.txt": b"new", "shared.txt": b"shared"})
    old_meta = store.user_dir("u") / "trees" / f"{old}.json"
    os.utime(old_meta, (time.time() - 100, time.time() - 100))
    for blob in (store.user_dir("u") / "blobs").glob("*/*"):
        os.utime(blob, (time.time() - 100, time.time() - 100))
    removed = store.collect_garbage(retention_seconds=50)
    assert removed["uploads"] == 1 and removed["blobs"] == 1  # old.txt's content only
    with pytest.raises(UploadNotFoundError):
        store.resolve("u", old)
    assert (store.resolve("u", fresh) / "shared.txt").read_bytes() == b"shared"
    assert not (store.user_dir("u") / "trees" / old).exists()
