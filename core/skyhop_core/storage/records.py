"""What store hooks take and return: a store's declaration, a bucket, a mount plan."""

from __future__ import annotations

import attrs


@attrs.frozen
class StoreInfo:
    """A store a plugin provides.

    ``name`` is what a task writes as ``store:`` (``local``, ``s3``); ``schemes`` are the
    bucket URI schemes it serves (``s3`` for ``s3://bucket``).
    """

    name: str
    display_name: str = ""
    schemes: tuple[str, ...] = ()


@attrs.frozen
class Bucket:
    """One bucket of a store, as the core tracks it.

    ``name`` is the bucket's name in the store; ``prefix`` a path inside it (from a URI
    such as ``s3://bucket/prefix``), empty for the whole bucket.
    """

    store: str
    name: str
    prefix: str = ""

    @property
    def uri(self) -> str:
        scheme = {"gcs": "gs"}.get(self.store, self.store)
        return f"{scheme}://{self.name}" + (f"/{self.prefix}" if self.prefix else "")


@attrs.frozen
class MountPlan:
    """How a node sees a bucket in MOUNT or MOUNT_CACHED mode: exactly one of

    - ``host_path``: a directory on the API server's machine that the backend binds into
      the node (the ``local`` store on the ``local`` backend), or
    - ``command``: a shell command that runs on each node and mounts the bucket at the
      mount path (for example an ``rclone mount``), exiting 0 once it is mounted (and
      when it is mounted already). It runs through the node's ``mount_launcher`` (else
      its ``job_launcher``): on a local node that is root inside the sandbox, with
      ``$HOME`` the home of the user jobs run as, who must get the files.
    """

    host_path: str | None = None
    command: str | None = None
    #: Variables the command needs that only the server has (its store credentials).
    #: The core hands them over on the command's stdin, never on a command line, and
    #: only to nodes on the server's own machine (the ``local`` backend); other nodes
    #: use their own credentials.
    server_env: dict[str, str] = attrs.field(factory=dict, repr=False)
    #: With ``command``: a shell command that returns once everything the mount holds
    #: locally (a VFS cache) is written to the bucket; each node runs it, through the
    #: same launcher, before the cluster is stopped or torn down. None: nothing to wait for.
    flush_command: str | None = None
