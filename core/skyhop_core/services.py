"""The server's shared services, passed explicitly to every handler (no module state)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from skyhop_core.checkcache import CheckCache
from skyhop_core.context import BackendContext
from skyhop_core.models.records import ClusterHandle, NodeInfo
from skyhop_core.plugins import Backends
from skyhop_core.requests.logs import LogHub
from skyhop_core.state import Store

if TYPE_CHECKING:
    from skyhop_core.jobs.service import JobsService
    from skyhop_core.requests.context import RequestContext
    from skyhop_core.requests.engine import Engine
    from skyhop_core.runner import CommandRunner
    from skyhop_core.serve.service import ServeService


class Services:
    def __init__(
        self,
        persistent_path: Path,
        store: Store,
        backends: Backends,
        config: dict[str, Any] | None = None,
        *,
        deploy: bool = False,
    ) -> None:
        self.persistent_path = persistent_path
        #: A deployed (team) server: ownership is enforced, others' objects are "not
        #: found", and only admins may act for all users (see ``ops.common.may_act_for_all``).
        self.deploy = deploy
        self.store = store
        self.backends = backends
        self.config = config or {}
        self.logs = LogHub(persistent_path / "requests")
        self.engine: Engine | None = None
        #: The managed-jobs service (``skyhop_core.jobs``), when the server runs one.
        self.jobs: JobsService | None = None
        #: The serve service (``skyhop_core.serve``), when the server runs one.
        self.serve: ServeService | None = None
        #: Serialises lifecycle operations (launch/start/stop/down) per cluster.
        self.cluster_locks: defaultdict[str, trio.Lock] = defaultdict(trio.Lock)
        #: Backend check results shared by every plan for a short while.
        self.check_cache = CheckCache()

    def backend_ctx(self, backend: str, request: RequestContext | None = None) -> BackendContext:
        """The context a backend hook gets: its state dir, the request's log, its config."""
        section = self.config.get(backend) or {}
        ctx: BackendContext

        def runner_factory(handle: ClusterHandle, node: NodeInfo) -> CommandRunner:
            return self.backends.call(
                backend, "skyhop_command_runner", ctx=ctx, handle=handle, node=node
            )

        kwargs: dict[str, Any] = dict(
            state_dir=str(self.persistent_path / "backends" / backend),
            persistent_path=str(self.persistent_path),
            config=section if isinstance(section, dict) else {},
            deployed=self.deploy,
        )
        if request is not None:
            kwargs.update(log=request.log, user_name=request.user.name, user_hash=request.user.hash)
        ctx = BackendContext(**kwargs, runner_factory=runner_factory)
        return ctx

    @property
    def stores(self) -> Any:
        """The registered stores (:class:`skyhop_core.storage.stores.Stores`), built once."""
        if getattr(self, "_stores", None) is None:
            from skyhop_core.storage.stores import Stores

            self._stores = Stores(self.backends.pm)
        return self._stores

    def store_ctx(self, store: str, request: RequestContext | None = None) -> BackendContext:
        """The context a store hook gets: ``<persistent path>/stores/<store>``, the
        request's log and user, the store's config section (``stores: {<store>: ...}``)."""
        stores_config = self.config.get("stores") or {}
        section = stores_config.get(store) if isinstance(stores_config, dict) else None
        kwargs: dict[str, Any] = dict(
            state_dir=str(self.persistent_path / "stores" / store),
            persistent_path=str(self.persistent_path),
            config=section if isinstance(section, dict) else {},
            deployed=self.deploy,
        )
        if request is not None:
            kwargs.update(log=request.log, user_name=request.user.name, user_hash=request.user.hash)
        return BackendContext(**kwargs)

    def runner(self, ctx: BackendContext, handle: ClusterHandle, node: NodeInfo) -> CommandRunner:
        return self.backends.call(
            handle.backend, "skyhop_command_runner", ctx=ctx, handle=handle, node=node
        )
