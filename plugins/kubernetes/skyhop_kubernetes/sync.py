"""File sync to a pod: a tar stream over exec stdin, unpacked by the pod's ``python3``.

Honours gitignore-style ``excludes`` and skips ``.git``, like the other backends.
"""

from __future__ import annotations

import io
import os
import shlex
import tarfile
from collections.abc import Sequence
from typing import TYPE_CHECKING

import trio

from skyhop_core.exceptions import CommandError
from skyhop_core.localrunner import is_excluded

if TYPE_CHECKING:
    from skyhop_kubernetes.runner import KubernetesCommandRunner

#: argv[1]: the directory to unpack into; argv[2]: for a single file, its final path.
UNTAR = (
    "import os, sys, tarfile\n"
    "os.makedirs(sys.argv[1], exist_ok=True)\n"
    "names = []\n"
    "with tarfile.open(fileobj=sys.stdin.buffer, mode='r|*') as tar:\n"
    "    for member in tar:\n"
    "        names.append(member.name)\n"
    "        tar.extract(member, sys.argv[1])\n"
    "if len(sys.argv) > 2 and names:\n"
    "    os.replace(os.path.join(sys.argv[1], names[0]), sys.argv[2])\n"
)


def tar_bytes(source: str, excludes: Sequence[str]) -> bytes:
    """A gzipped tar of a file (by its base name) or of a directory's contents."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        if os.path.isfile(source):
            tar.add(source, arcname=os.path.basename(source))
        for dirpath, dirnames, filenames in os.walk(source):  # (nothing for a file)
            rel = os.path.relpath(dirpath, source)
            rel = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            dirnames[:] = [d for d in dirnames
                           if d != ".git" and not is_excluded(rel + d, True, excludes)]  # fmt: skip
            for d in dirnames:
                tar.add(os.path.join(dirpath, d), arcname=rel + d, recursive=False)
            for name in filenames:
                if not is_excluded(rel + name, False, excludes):
                    tar.add(os.path.join(dirpath, name), arcname=rel + name, recursive=False)
    return buffer.getvalue()


async def upload(runner: KubernetesCommandRunner, local_path: str, remote_path: str, *,
                 excludes: Sequence[str] = ()) -> None:  # fmt: skip
    """Copy a file, or a directory's contents, to ``remote_path`` in the runner's pod."""
    source = os.path.expanduser(local_path)
    if not os.path.exists(source):
        raise FileNotFoundError(f"{local_path} does not exist; nothing to upload.")
    dest = runner.resolve(remote_path)
    argv = [*runner.python(), "-c", UNTAR]
    if os.path.isfile(source) and not remote_path.endswith("/"):
        argv += [os.path.dirname(dest.rstrip("/")) or "/", dest]
    else:
        argv += [dest]
    data = await trio.to_thread.run_sync(tar_bytes, source, list(excludes))
    result = await runner.run(argv, input=data)
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip()
        raise CommandError(
            f"Copying {local_path} to {runner.pod}:{dest} failed: {detail or result.returncode}",
            returncode=result.returncode, command=shlex.join(argv[:2]), detail=detail,
        )  # fmt: skip
    if runner.ctx is not None:
        runner.ctx.log(f"  {runner.pod}: synced {source} -> {dest} ({len(data)} bytes).")
