"""A command runner for nodes that are directories on this machine (the local backend).

Commands run as subprocesses in their own session, so cancelling the caller's trio scope
kills the command's whole process group. ``upload`` copies files with :mod:`shutil` in a
worker thread, skipping ``.git`` and gitignore-style ``excludes``.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence

import trio

from skyhop_core.runner import CommandRunner, CompletedCommand, OutputCallback

KILL_GRACE_SECONDS = 1.0


async def kill_process_group(process: trio.Process) -> None:
    """SIGTERM the process's group, SIGKILL it after a grace period, reap the process."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        with trio.move_on_after(KILL_GRACE_SECONDS):
            await process.wait()
            return
    await process.wait()


def _environment(env: Mapping[str, str] | None) -> dict[str, str] | None:
    return None if env is None else {**os.environ, **env}


def is_excluded(relpath: str, is_dir: bool, patterns: Sequence[str]) -> bool:
    """Whether ``relpath`` (``/``-separated, relative to the upload root) is excluded.

    Gitignore-style: a pattern without a slash matches the name at any depth; one with a
    slash matches the path from the root; a trailing ``/`` matches directories only; a
    leading ``!`` re-includes; the last matching pattern wins.
    """
    name = relpath.rsplit("/", 1)[-1]
    excluded = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        dir_only = pattern.endswith("/")
        pattern = pattern.rstrip("/")
        if not pattern or (dir_only and not is_dir):
            continue
        if "/" in pattern:
            hit = fnmatch.fnmatchcase(relpath, pattern.lstrip("/"))
        else:
            hit = fnmatch.fnmatchcase(name, pattern)
        if hit:
            excluded = not negate
    return excluded


def copy_tree(source: str, dest: str, excludes: Sequence[str] = ()) -> None:
    """Copy a file, or a directory's contents, to ``dest`` (merging, overwriting)."""
    if os.path.isfile(source):
        if dest.endswith("/") or os.path.isdir(dest):
            dest = os.path.join(dest, os.path.basename(source))
        os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
        shutil.copy2(source, dest)
        return
    for dirpath, dirnames, filenames in os.walk(source):
        rel_dir = os.path.relpath(dirpath, source)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        dirnames[:] = [
            d for d in dirnames if d != ".git" and not is_excluded(rel_dir + d, True, excludes)
        ]
        target_dir = os.path.join(dest, rel_dir)
        os.makedirs(target_dir, exist_ok=True)
        for filename in filenames:
            if is_excluded(rel_dir + filename, False, excludes):
                continue
            src = os.path.join(dirpath, filename)
            dst = os.path.join(target_dir, filename)
            if os.path.islink(src):
                if os.path.lexists(dst):
                    os.unlink(dst)
                os.symlink(os.readlink(src), dst)
            else:
                shutil.copy2(src, dst)


class LocalCommandRunner(CommandRunner):
    """Runs commands on this machine for a node whose home is a local directory."""

    async def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> CompletedCommand:
        result = await trio.run_process(
            list(argv),
            stdin=input or b"",
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=_environment(env),
            cwd=self.resolve(cwd) if cwd else None,
            start_new_session=True,
            deliver_cancel=kill_process_group,
        )
        return CompletedCommand(result.returncode, result.stdout, result.stderr)

    async def stream(
        self,
        argv: Sequence[str],
        on_output: OutputCallback,
        *,
        env: Mapping[str, str] | None = None,
    ) -> int:
        process = await trio.lowlevel.open_process(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=_environment(env),
            start_new_session=True,
        )
        try:
            assert process.stdout is not None
            async with process.stdout:
                while chunk := await process.stdout.receive_some(65536):
                    await on_output(bytes(chunk))
            return await process.wait()
        finally:
            if process.returncode is None:
                with trio.CancelScope(shield=True):
                    await kill_process_group(process)

    async def upload(
        self, local_path: str, remote_path: str, *, excludes: Sequence[str] = ()
    ) -> None:
        source = os.path.expanduser(local_path)
        if not os.path.exists(source):
            raise FileNotFoundError(f"{local_path} does not exist; nothing to upload.")
        dest = self.resolve(remote_path)
        await trio.to_thread.run_sync(copy_tree, source, dest, list(excludes))

    def python(self) -> list[str]:
        return [sys.executable]

    def agent_command(self) -> list[str]:
        from skyhop_core.agent.daemon import boot_argv

        return [*boot_argv(sys.executable), "--root", self.node.runtime_dir]
