"""The tar fallback of the ssh backend's file sync (used where a node has no rsync)."""

from __future__ import annotations

import io
import tarfile

from skyhop_ssh.sync import _tar_bytes


def test_a_single_file_makes_a_complete_archive(tmp_path):
    source = tmp_path / "config.json"
    source.write_text('{"a": 1}')
    with tarfile.open(fileobj=io.BytesIO(_tar_bytes(str(source), [])), mode="r:gz") as tar:
        (member,) = tar.getmembers()
        assert member.name == "config.json"
        assert tar.extractfile(member).read() == b'{"a": 1}'


def test_a_tree_skips_git_and_excluded_files(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.py").write_text("print(1)")
    (tmp_path / "debug.log").write_text("noise")
    with tarfile.open(fileobj=io.BytesIO(_tar_bytes(str(tmp_path), ["*.log"])), mode="r:gz") as tar:
        assert sorted(tar.getnames()) == ["src", "src/main.py"]
