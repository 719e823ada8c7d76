"""The shell a node runs to MOUNT a cloud bucket with rclone, shared by the cloud stores.

A store's ``skyhop_store_mount_plan`` gives :func:`mount_script` its rclone remote (e.g.
``:s3,provider=AWS,env_auth=true:bucket/prefix``) and any lines of its own (credentials,
a CA bundle); the script does the rest the same way for every store:

- says which of rclone or FUSE the node lacks (and makes nothing);
- keeps a mount of the same bucket on a second launch and replaces one of another
  (rclone's ``--devname`` is what the mount table shows);
- refuses a mount path that holds files (the mount would hide them), as SkyPilot does;
- run as root (the local sandbox's mount launcher), mounts for the owner of ``$HOME``
  with ``--allow-other``, so jobs get the files but not rclone's environment;
- MOUNT writes a file to the bucket when it is closed; MOUNT_CACHED reads and writes
  through a local cache written back a second after close.

:data:`FLUSH_SCRIPT` is the plan's ``flush_command``: ``stop`` and ``down`` run it so that
nothing cached is lost (rclone does not write back on SIGTERM).
"""

from __future__ import annotations

import shlex


def node_path(mount_path: str) -> str:
    """``mount_path`` as a shell word on the node (``~`` is the node's ``$HOME``)."""
    if mount_path.startswith("~"):
        return '"$HOME"' + shlex.quote(mount_path[1:])
    return shlex.quote(mount_path)


def mount_script(uri: str, remote: str, mount_path: str, cached: bool, setup: str = "") -> str:
    """The script mounting ``remote`` at ``mount_path``; ``setup`` runs just before rclone,
    may add flags with ``set -- "$@" ...`` and finds the cache in ``$cache_dir``."""
    path = node_path(mount_path)
    cache = "--vfs-cache-mode full --vfs-write-back 1s" if cached else \
        "--vfs-cache-mode writes --vfs-write-back 0s"  # fmt: skip
    device = shlex.quote(f"skyhop-{'cached' if cached else 'mount'}:{uri}")
    return f"""set -e
if ! command -v rclone >/dev/null 2>&1; then
  echo "MOUNT of {uri} needs rclone on the node (Debian: apt-get install rclone fuse3); use mode: COPY instead" >&2; exit 1
fi
if [ ! -e /dev/fuse ] || {{ ! command -v fusermount3 && ! command -v fusermount; }} >/dev/null 2>&1; then
  echo "MOUNT of {uri} needs FUSE (/dev/fuse and fusermount) on the node, which it does not have; use mode: COPY instead" >&2; exit 1
fi
mkdir -p {path}
if mountpoint -q {path}; then
  # A second launch: the same bucket stays mounted, another one replaces it.
  if [ "$(findmnt -n -o SOURCE --mountpoint {path} 2>/dev/null)" = {device} ]; then exit 0; fi
  fusermount3 -u -z {path} 2>/dev/null || fusermount -u -z {path} 2>/dev/null || umount -l {path}
fi
if [ -n "$(ls -A {path})" ]; then
  echo "MOUNT of {uri} at "{path}" on the node: the directory is not empty, and the mount would hide its files; mount at another path, or remove them first" >&2; exit 1
fi
cache_dir="${{XDG_CACHE_HOME:-$HOME/.cache}}/skyhop-rclone"
set -- --daemon --config /dev/null --devname {device} {cache}
if [ "$(id -u)" = 0 ]; then
  # Mounted by root for the node's user (the owner of its home): jobs get its files,
  # root keeps the credentials (its environment is not theirs to read) and the cache.
  cache_dir=/var/cache/skyhop-rclone
  set -- "$@" --allow-other --uid "$(stat -c %u "$HOME")" --gid "$(stat -c %g "$HOME")"
fi
mkdir -p "$cache_dir"
set -- "$@" --cache-dir "$cache_dir"
{setup}
rclone mount {shlex.quote(remote)} {path} "$@"
"""


#: Waits while rclone's VFS cache (where :func:`mount_script` puts it) holds a file not
#: yet written to its bucket: rclone marks it "Dirty" in its metadata until the upload is
#: done, and on SIGTERM it exits without writing back.
FLUSH_SCRIPT = """cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/skyhop-rclone"
if [ "$(id -u)" = 0 ]; then cache_dir=/var/cache/skyhop-rclone; fi
[ -d "$cache_dir/vfsMeta" ] || exit 0
while grep -rqsE '"Dirty": *true' "$cache_dir/vfsMeta"; do
  pgrep -x rclone >/dev/null || { echo "rclone is not running; its cache holds writes not yet in the bucket" >&2; exit 1; }
  sleep 0.2
done
"""
