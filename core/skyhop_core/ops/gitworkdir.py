"""A git ``workdir`` (``{url, ref}``): the API server clones the repository at ``ref``
and syncs the checkout (``.git`` included) to every node's workdir, so nodes need
neither git nor the repository's credentials.

A deployed (team) server clones only remote repositories (``https://``, ``ssh://``,
``git@host:path``, ``git://``): a local path or ``file://`` URL would let a user read the
server's own files.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from typing import Any

import trio

from skyhop_core.exceptions import NotSupportedError, TaskValidationError

_REMOTE = re.compile(r"^(https?|ssh|git)://|^[\w.-]+@[\w.-]+:")
CLONE_TIMEOUT_SECONDS = 600


def _clone(url: str, ref: str | None, dest: str) -> None:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}  # never wait for a password

    def git(*args: str) -> None:
        done = subprocess.run(["git", *args], capture_output=True, text=True, env=env,
                              timeout=CLONE_TIMEOUT_SECONDS)  # fmt: skip
        if done.returncode != 0:
            raise TaskValidationError(
                f"workdir: git {args[0]} of {url!r}" + (f" at {ref!r}" if ref else "")
                + f" failed: {(done.stderr or done.stdout).strip()[-400:]}",
                source="<task>", field="workdir.ref" if args[0] == "checkout" else "workdir.url",
                value=ref if args[0] == "checkout" else url,
            )  # fmt: skip

    if shutil.which("git") is None:
        raise NotSupportedError("workdir: a git workdir needs git on the API server's machine.")
    git("clone", "--quiet", "--", url, dest)
    if ref:
        git("-C", dest, "checkout", "--quiet", "--detach", ref)


async def sync_git_workdir(ctx: Any, bctx: Any, handle: Any, task: Any, remote: str) -> None:
    """Clone ``task.workdir`` here and send the checkout to ``remote`` on every node."""
    url, ref = task.workdir["url"], task.workdir.get("ref")
    if ctx.services.deploy and not _REMOTE.match(url):
        raise NotSupportedError(
            f"workdir: {url!r} is not a remote git URL; this shared API server clones only "
            "remote repositories (https://, ssh://, git@host:path)."
        )
    tmp_root = ctx.services.persistent_path / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    work = await trio.to_thread.run_sync(lambda: tempfile.mkdtemp(dir=tmp_root))
    checkout = os.path.join(work, "repo")
    try:
        ctx.log(f"workdir: cloning {url}" + (f" at {ref}" if ref else ""))
        await trio.to_thread.run_sync(_clone, url, ref, checkout)
        async with trio.open_nursery() as nursery:
            for node in handle.nodes:
                runner = ctx.services.runner(bctx, handle, node)
                nursery.start_soon(runner.upload, checkout, remote)
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(lambda: shutil.rmtree(work, ignore_errors=True))
