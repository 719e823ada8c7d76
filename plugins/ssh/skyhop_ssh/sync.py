"""File sync to a node: rsync over the multiplexed SSH connection, or a tar stream.

``rsync`` is used when the node has it (recorded at provision time in
``NodeInfo.extra["rsync"]``); otherwise the files go as a tar stream unpacked by the
node's ``python3``. Both honour gitignore-style ``excludes`` and skip ``.git`` (the core
syncs from uploads, which the client already filtered by ``.skyignore``/``.gitignore``).
Progress goes to the request log.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import tarfile
from collections.abc import Sequence
from typing import TYPE_CHECKING

import trio

from skyhop_core.exceptions import CommandError
from skyhop_core.localrunner import is_excluded

if TYPE_CHECKING:
    from skyhop_ssh.sshcmd import SSHCommandRunner

#: Unpacks a tar stream from stdin into argv[1].
UNTAR = (
    "import os, sys, tarfile\n"
    "os.makedirs(sys.argv[1], exist_ok=True)\n"
    "tarfile.open(fileobj=sys.stdin.buffer, mode='r|*').extractall(sys.argv[1])\n"
)


def rsync_filters(excludes: Sequence[str]) -> list[str]:
    """rsync filter options from gitignore-style patterns (the last gitignore match wins,
    the first rsync match wins, hence the reversal)."""
    args = ["--exclude=.git"]
    for pattern in reversed(excludes):
        if pattern.startswith("!"):
            args.append(f"--include={pattern[1:]}")
        else:
            args.append(f"--exclude={pattern}")
    return args


def _tar_bytes(source: str, excludes: Sequence[str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        if os.path.isfile(source):
            tar.add(source, arcname=os.path.basename(source))
        else:
            _add_tree(tar, source, excludes)
    return buffer.getvalue()  # after the with: the gzip stream and tar end are written


def _add_tree(tar: tarfile.TarFile, source: str, excludes: Sequence[str]) -> None:
    for dirpath, dirnames, filenames in os.walk(source):
        rel = os.path.relpath(dirpath, source)
        rel = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        dirnames[:] = [
            d for d in dirnames if d != ".git" and not is_excluded(rel + d, True, excludes)
        ]
        for d in dirnames:
            tar.add(os.path.join(dirpath, d), arcname=rel + d, recursive=False)
        for name in filenames:
            if not is_excluded(rel + name, False, excludes):
                tar.add(os.path.join(dirpath, name), arcname=rel + name, recursive=False)


async def _run_checked(runner: SSHCommandRunner, argv: list[str], input: bytes = b"") -> None:
    result = await runner.run(argv, input=input)
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip()
        raise CommandError(
            f"Copying files to {runner.node.ip} failed: {detail or result.returncode}",
            returncode=result.returncode, command=shlex.join(argv), detail=detail,
        )  # fmt: skip


async def upload(
    runner: SSHCommandRunner, local_path: str, remote_path: str, *, excludes: Sequence[str] = ()
) -> None:
    """Copy a file, or a directory's contents, to ``remote_path`` on the runner's node."""
    source = os.path.expanduser(local_path)
    if not os.path.exists(source):
        raise FileNotFoundError(f"{local_path} does not exist; nothing to upload.")
    dest = runner.resolve(remote_path)
    is_file = os.path.isfile(source)
    if is_file and not dest.endswith("/"):
        parent = os.path.dirname(dest.rstrip("/")) or "/"
    else:
        parent = dest
    await _run_checked(runner, ["mkdir", "-p", parent])
    if runner.node.extra.get("rsync", "true") == "false":
        if is_file:
            dest = parent  # the tar holds the basename; rename below if needed
        data = await trio.to_thread.run_sync(_tar_bytes, source, list(excludes))
        await _run_checked(runner, ["python3", "-c", UNTAR, dest], input=data)
        if is_file and not remote_path.endswith("/"):
            target = runner.resolve(remote_path)
            moved = os.path.join(parent, os.path.basename(source))
            if moved != target:
                await _run_checked(runner, ["mv", "-f", moved, target])
        return
    await _rsync(runner, source, dest, is_file, excludes)


async def _rsync(
    runner: SSHCommandRunner, source: str, dest: str, is_file: bool, excludes: Sequence[str]
) -> None:
    ssh = shlex.join(runner.ssh_argv()[:-1])  # rsync appends the destination host itself
    src = source if is_file else source.rstrip("/") + "/"
    argv = ["rsync", "-a", "--stats", *rsync_filters(excludes), "-e", ssh, src,
            f"{runner.target.destination}:{dest}"]  # fmt: skip
    result = await trio.run_process(argv, capture_stdout=True, capture_stderr=True, check=False)
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip()
        raise CommandError(
            f"rsync of {source} to {runner.node.ip}:{dest} failed: {detail}",
            returncode=result.returncode, command=shlex.join(argv), detail=detail,
        )  # fmt: skip
    stats = result.stdout.decode(errors="replace")
    files = re.search(r"Number of regular files transferred: ([\d,]+)", stats)
    size = re.search(r"Total transferred file size: ([\d,]+)", stats)
    if runner.log is not None:
        runner.log(
            f"  {runner.node.ip}: synced {source} -> {dest} "
            f"({files.group(1) if files else '?'} files, {size.group(1) if size else '?'} bytes)."
        )
