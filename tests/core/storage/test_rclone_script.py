"""The shell every cloud store's MOUNT runs on a node (skyhop_core.storage.rclone), run
here with a stand-in rclone that records its arguments instead of mounting."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from skyhop_core.storage.rclone import mount_script

pytestmark = pytest.mark.skipif(
    not os.path.exists("/dev/fuse") or not shutil.which("fusermount3") or not shutil.which("mountpoint"),
    reason="the script checks for FUSE first: needs /dev/fuse, fusermount3 and mountpoint",
)


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A directory the node's user (nobody, when the tests run as root: root would mount
    for the owner of $HOME, with its cache under /var/cache) can reach, unlike tmp_path."""
    with tempfile.TemporaryDirectory(prefix="skyhop-rclone-test-") as where:
        os.chmod(where, 0o777)
        yield Path(where)


def run(tmp_path: Path, mount_path: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    calls = tmp_path / "rclone-calls"
    (bin_dir / "rclone").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (bin_dir / "rclone").chmod(0o755)
    script = mount_script("s3://b", ":s3:b", mount_path, cached=False)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path / "home"),
           "XDG_CACHE_HOME": str(tmp_path / "cache")}  # fmt: skip
    # As a node's user, not root (root would mount for the owner of $HOME).
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.getuid() == 0 else []
    (tmp_path / "home").mkdir(exist_ok=True)
    (tmp_path / "home").chmod(0o777)
    done = subprocess.run([*prefix, "bash", "-c", script], env=env, capture_output=True, text=True)
    return done, calls


def test_an_empty_or_new_mount_path_is_mounted(scratch: Path) -> None:
    done, calls = run(scratch, "~/new/out")
    assert done.returncode == 0, done.stderr
    assert (scratch / "home" / "new" / "out").is_dir()
    assert f"{scratch}/home/new/out" in calls.read_text()


def test_a_mount_path_with_files_is_refused_and_its_files_kept(scratch: Path) -> None:
    """SkyPilot's semantics: a mount would hide what is there (a checkpoint directory a
    job already wrote, a typo'd path such as ~), so the launch says so instead."""
    target = scratch / "home" / "ckpt"
    target.mkdir(parents=True)
    (target / "step-100.pt").write_text("weights")
    done, calls = run(scratch, "~/ckpt")
    assert done.returncode == 1
    assert "MOUNT of s3://b at" in done.stderr and "ckpt on the node: the directory is not empty" in done.stderr
    assert not calls.exists()  # rclone never ran
    assert (target / "step-100.pt").read_text() == "weights"
