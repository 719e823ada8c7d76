"""What the client uploads from a workdir: SkyPilot's ignore rules, links, modes, paths."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from skyhop import uploads
from skyhop_core import exceptions


def tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def uploaded(root: Path) -> set[str]:
    scanned = uploads.scan(str(root))
    return {e["path"] for e in scanned.manifest["entries"] if e["type"] != "dir"}


def test_gitignore_files_at_every_level_and_git_info_exclude(tmp_path: Path) -> None:
    root = tree(tmp_path, {
        ".gitignore": "*.log\n/build\n!keep.log\ncache/\n",
        "a.log": "", "keep.log": "", "src/b.log": "", "src/build": "not top-level",
        "build/out.bin": "", "src/cache/x": "", "src/.gitignore": "secret.txt\n",
        "src/secret.txt": "", "secret.txt": "only src/ ignores it", "main.py": "",
        ".git/config": "", ".git/info/exclude": "local-only\n", "local-only": "",
    })  # fmt: skip
    assert uploaded(root) == {
        ".gitignore", "keep.log", "src/build", "src/.gitignore", "secret.txt", "main.py"
    }


def test_a_skyignore_replaces_the_git_rules(tmp_path: Path) -> None:
    root = tree(tmp_path, {
        ".skyignore": "/data\n*.ckpt\n", ".gitignore": "main.py\n", "main.py": "",
        "data/big": "", "sub/data/kept": "", "sub/model.ckpt": "",
        "sub/.skyignore": "notes.txt\n", "sub/notes.txt": "", "notes.txt": "",
    })  # fmt: skip
    assert uploaded(root) == {
        ".skyignore", ".gitignore", "main.py", "sub/data/kept", "sub/.skyignore", "notes.txt"
    }


def test_executable_bit_and_links(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("from outside")
    root = tree(tmp_path / "proj", {"run.sh": "echo", "data.txt": "d", "dir/x": ""})
    (root / "run.sh").chmod(0o755)
    (root / "inside").symlink_to("data.txt")
    (root / "dirlink").symlink_to("dir")
    (root / "out").symlink_to(outside)
    (root / "dangling").symlink_to("/nonexistent/target")
    entries = {e["path"]: e for e in uploads.scan(str(root)).manifest["entries"]}
    assert entries["run.sh"]["executable"] is True and entries["data.txt"]["executable"] is False
    assert entries["inside"] == {"path": "inside", "type": "symlink", "target": "data.txt"}
    assert entries["dirlink"]["type"] == "symlink"
    # The server cannot see a file outside the tree: its content goes instead.
    assert entries["out"]["type"] == "file" and entries["out"]["size"] == len("from outside")
    assert entries["dangling"] == {"path": "dangling", "type": "symlink",
                                   "target": "/nonexistent/target"}  # fmt: skip


def test_relative_sources_resolve_against_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "proj").mkdir()
    monkeypatch.chdir(tmp_path / "proj")
    assert uploads.resolve_source(".", "workdir") == str(tmp_path / "proj")
    assert uploads.resolve_source("../proj", "workdir") == str(tmp_path / "proj")
    with pytest.raises(exceptions.TaskValidationError) as info:
        uploads.resolve_source("./data", "file_mounts['/data']")
    message = str(info.value)
    assert "file_mounts['/data']" in message and str(tmp_path / "proj") in message


def test_a_single_file_source_is_a_file_manifest(tmp_path: Path) -> None:
    (tmp_path / "cfg.yaml").write_text("a: 1\n")
    (tmp_path / "link.yaml").symlink_to(tmp_path / "cfg.yaml")
    manifest = uploads.scan(str(tmp_path / "link.yaml")).manifest
    assert manifest["kind"] == "file"
    assert [e["path"] for e in manifest["entries"]] == ["link.yaml"]
    assert manifest["entries"][0]["size"] == 5


def test_only_launch_and_exec_bodies_with_local_paths_upload(tmp_path: Path) -> None:
    assert uploads.needs_upload("launch", {"task": {"workdir": "."}})
    assert uploads.needs_upload("exec", {"task": {"file_mounts": {"/d": "./d"}}})
    assert not uploads.needs_upload("launch", {"task": {"file_mounts": {"/d": "s3://b"}}})
    assert not uploads.needs_upload("launch", {"task": {"workdir": "skyhop-upload://" + "0" * 32}})
    assert not uploads.needs_upload("status", {"task": {"workdir": "."}})
    assert os.path.isabs(uploads.resolve_source(str(tmp_path), "workdir"))



def test_a_workdir_must_be_a_directory(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("")
    body = {"task": {"workdir": str(tmp_path / "train.py")}}
    with pytest.raises(exceptions.TaskValidationError, match="must be a directory"):
        uploads.prepare_body(None, "launch", body)  # type: ignore[arg-type]


def test_hashes_are_cached_until_a_file_changes(tmp_path: Path) -> None:
    from skyhop.hashcache import HashCache

    data = tmp_path / "data.bin"
    data.write_bytes(b"A" * 1000)
    old = time.time() - 60  # settled: not "racily clean"
    os.utime(data, (old, old))
    cache_path = tmp_path / "cache.json"
    cache = HashCache(cache_path)
    first = uploads.scan(str(data), cache).manifest["entries"][0]["sha256"]
    cache.save()
    # Same size, mtime and inode: the saved hash is used and the file is not read. (The
    # edit below is invisible to the cache by design, exactly as in git's index.)
    with open(data, "r+b") as f:
        f.write(b"B")
    os.utime(data, (old, old))
    assert uploads.scan(str(data), HashCache(cache_path)).manifest["entries"][0]["sha256"] == first
    # A real edit changes the mtime: hashed again.
    data.write_bytes(b"C" * 1000)
    fresh = uploads.scan(str(data), HashCache(cache_path)).manifest["entries"][0]["sha256"]
    assert fresh == hashlib.sha256(b"C" * 1000).hexdigest()


def test_a_just_modified_file_is_not_cached(tmp_path: Path) -> None:
    from skyhop.hashcache import HashCache

    (tmp_path / "f").write_text("now")
    cache = HashCache(tmp_path / "cache.json")
    uploads.scan(str(tmp_path / "f"), cache)
    cache.save()
    assert not (tmp_path / "cache.json").exists()  # nothing settled enough to remember
