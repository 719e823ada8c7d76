"""The request engine: one trio nursery, a cancel scope per request, a limiter per class.

Scheduling classes keep cheap reads from waiting behind slow work:

- ``short``: status, queue, job status, check, optimize… (many slots)
- ``long``: launch, exec, start, stop, down (fewer slots)
- ``stream``: log tails that may follow for hours (many slots, never blocks the others)

Requests are rows in the state store before they run, and their logs are files under the
persistent path, so a restarted server still lists them; those that were RUNNING when the
server died are FAILED with ``ServerRestartedError``, PENDING ones run again — on this
server after a restart, or on another replica (see :mod:`skyhop_core.requests.replicas`).
"""

from __future__ import annotations

import os
import time
import types
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import attrs
import trio

from skyhop_core import wire
from skyhop_core.exceptions import RequestCancelledError, SkyhopError
from skyhop_core.models.status import RequestStatus
from skyhop_core.requests.context import RequestContext, User
from skyhop_core.requests.ids import RequestIds
from skyhop_core.requests.logs import RequestLogWriter
from skyhop_core.requests.replicas import Replica
from skyhop_core.requests.secrets import SecretBox, has_secrets, redact
from skyhop_core.requests.warmup import WarmUp
from skyhop_core.state import requests as rq

if TYPE_CHECKING:
    from skyhop_core.services import Services

Handler = Callable[[RequestContext, Any], Awaitable[Any]]

DEFAULT_LIMITS = {"short": 64, "long": 16, "stream": 256}

#: How often a replica looks at a request another replica runs.
REMOTE_POLL_SECONDS = 0.1
#: How long a cancel waits for another replica to finish cancelling.
REMOTE_CANCEL_WAIT_SECONDS = 10.0

#: Finished requests whose outcome is kept in memory for clients waiting on them.
FINISHED_CACHE_SIZE = 20_000
#: Results that are lists longer than this are not kept in that cache.
CACHED_RESULT_MAX_ITEMS = 100


def slot_limits(spec: str | None = None) -> dict[str, int]:
    """Slots per scheduling class: the defaults, overridden by ``SKYHOP_REQUEST_SLOTS``
    (e.g. ``long=4,short=128``)."""
    limits = dict(DEFAULT_LIMITS)
    spec = os.environ.get("SKYHOP_REQUEST_SLOTS", "") if spec is None else spec
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, value = item.partition("=")
        if name not in limits or not value.isdigit() or int(value) < 1:
            raise ValueError(
                f"SKYHOP_REQUEST_SLOTS: {item!r} is not CLASS=N with CLASS one of "
                f"{', '.join(limits)} and N >= 1."
            )
        limits[name] = int(value)
    return limits


@attrs.frozen
class Operation:
    """An API operation: its parameters (an attrs class), handler and scheduling class."""

    name: str
    params: type
    handler: Handler
    schedule: str = "short"
    #: Called at submission; raise to reject bad parameters before a request exists.
    validate: Callable[[Any], None] | None = None
    #: The handler relays bytes kept elsewhere (``ctx.send``): its log lives in memory
    #: until read instead of in the request's log file.
    live_log: bool = False


class Engine:
    """Runs requests. Start it with ``await nursery.start(engine.serve)``."""

    def __init__(
        self,
        services: Services,
        operations: dict[str, Operation],
        limits: dict[str, int] | None = None,
        retention_seconds: float = 7 * 24 * 3600,
    ) -> None:
        self.services = services
        self.operations = operations
        self.limiters = {k: trio.CapacityLimiter(v) for k, v in (limits or DEFAULT_LIMITS).items()}
        self.retention_seconds = retention_seconds
        self._nursery: trio.Nursery | None = None
        self._scopes: dict[str, trio.CancelScope] = {}
        self._done: dict[str, trio.Event] = {}
        self._finished: OrderedDict[str, Any] = OrderedDict()
        #: The user hash of each request this replica runs (for owner-scoped lookups).
        self._owners: dict[str, str] = {}
        self._users: dict[str, User] = {}
        self.replica = Replica()
        #: Task secrets in stored bodies are sealed (see requests/secrets.py).
        self.secret_box = SecretBox(services.persistent_path)
        #: Requests whose stored body holds sealed secrets, to redact when they finish.
        self._sealed: set[str] = set()
        #: Rows of running requests not written yet (see :meth:`submit_and_wait`).
        self._unwritten: dict[str, dict[str, Any]] = {}
        #: Set once a running request's outcome write is queued (see :meth:`cancel`).
        self._outcome_queued: dict[str, trio.Event] = {}
        self._ids = RequestIds()
        #: Set-up a validated request waits for (see requests/warmup.py); None: none.
        self.warm_up: WarmUp | None = None
        #: ``trio.current_time()`` of the latest submission (or of the engine's start).
        self.last_submit = 0.0

    # --- lifecycle ----------------------------------------------------------------------

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Register this replica, take over dead replicas' requests, then run requests."""
        self.last_submit = trio.current_time()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await self.replica.register(self)
            await self.replica.take_over_dead(self, legacy=True)
            nursery.start_soon(self.replica.run, self)
            nursery.start_soon(self._retention_loop)
            task_status.started()
            await trio.sleep_forever()

    async def _retention_loop(self) -> None:
        while True:
            cutoff = time.time() - self.retention_seconds
            expired = await self.services.store.run(rq.expired_ids, cutoff)
            if expired:
                await self.services.store.run(rq.delete, expired)
                for request_id in expired:
                    self._finished.pop(request_id, None)
                    self.services.logs.remove(request_id)
            await trio.sleep(min(3600.0, max(1.0, self.retention_seconds / 10)))

    # --- submitting -----------------------------------------------------------------------

    def parse(self, name: str, body: dict[str, Any]) -> Any:
        """Structure and validate parameters; raises ValueError/SkyhopError on bad input."""
        op = self.operations.get(name)
        if op is None:
            raise ValueError(f"Unknown operation {name!r}.")
        try:
            params = wire.structure(body, op.params)
        except Exception as exc:  # cattrs raises ClassValidationError groups
            message = f"Invalid parameters for {name}: {wire.describe_error(exc)}"
            # A typed error (InvalidClusterNameError…) keeps its type for the client.
            typed = [e for e in wire.leaf_errors(exc) if isinstance(e, SkyhopError)]
            raise (type(typed[0])(message) if typed else ValueError(message)) from None
        if op.validate is not None:
            op.validate(params)
        return params

    async def submit(self, name: str, body: dict[str, Any], user: User) -> str:
        """Create a request and start it; returns its ID once its row is stored."""
        request_id, _ = await self.submit_and_wait(name, body, user, wait=0.0)
        return request_id

    async def submit_and_wait(
        self, name: str, body: dict[str, Any], user: User, *, wait: float
    ) -> tuple[str, Any]:
        """Create a request, start it and wait up to ``wait`` seconds for it to finish.

        Returns ``(request_id, outcome)``: the outcome (as :meth:`wait` gives it) when it
        finished in time, else None. Only ``short`` requests are waited on. Either way the request's row is committed before
        this returns, so an acknowledged request survives a crash of the server.

        A ``short`` request that gets a slot at once and is waited on is written once,
        when it finishes (or, should it outlast ``wait``, when the wait ends): a read
        costs one row write instead of two, and it is never acknowledged before it is
        stored. Until then it is known only to this replica (it resolves, streams and
        cancels here; ``GET /api/status`` lists it once it is written).
        """
        self.last_submit = trio.current_time()
        op = self.operations.get(name)
        warm_up = self.warm_up
        if op is not None and op.validate is not None and warm_up and not warm_up.done:
            await warm_up.ensure()  # its validator, built on a thread if not yet
        params = self.parse(name, body)
        op = self.operations[name]
        if op.schedule != "short":
            wait = 0.0  # long work answers at once: its client streams the log meanwhile
        request_id = self._ids.new()
        # A free slot is taken now, so the row is written once, already RUNNING.
        limiter = self.limiters[op.schedule]
        try:
            limiter.acquire_on_behalf_of_nowait(request_id)
            holds_slot = True
        except trio.WouldBlock:
            holds_slot = False
        sealed = has_secrets(body)
        if sealed:
            body = self.secret_box.seal(body)  # the parsed params keep the values
        row: dict[str, Any] = dict(
            request_id=request_id,
            name=name,
            user_name=user.name,
            user_hash=user.hash,
            user_role=user.role,
            cluster_name=getattr(params, "cluster_name", None),
            schedule_type=op.schedule,
            body=body,
            running=holds_slot,
            owner=self.replica.server_id,
            created_at=time.time(),
        )
        deferred = wait > 0 and holds_slot and op.schedule == "short"
        if deferred:
            self._unwritten[request_id] = row
        else:
            try:
                await self.services.store.write(lambda conn: rq.insert(conn, **row))
            except BaseException:
                if holds_slot:
                    limiter.release_on_behalf_of(request_id)
                raise
        if sealed:
            self._sealed.add(request_id)
        self._start(request_id, op, params, user, holds_slot)
        if wait <= 0:
            return request_id, None
        done = self._done[request_id]
        with trio.move_on_after(wait):
            await done.wait()
        unwritten = self._unwritten.pop(request_id, None)
        if unwritten is not None:
            # Still running: store it before its ID is acknowledged. The writer applies
            # writes in order, so its finish (queued later) cannot overtake this insert.
            with trio.CancelScope(shield=True):
                await self.services.store.write(lambda conn: rq.insert(conn, **unwritten))
        elif deferred and not done.is_set():
            # It finished meanwhile and its (only) write is under way: wait for it.
            await done.wait()
        return request_id, self._finished.get(request_id) if done.is_set() else None

    def resume(self, row: Any) -> None:
        """Run a PENDING request this replica has just come to own (its stored body's
        secrets unsealed again)."""
        op = self.operations.get(row.name)
        user = User(row.user_name, row.user_hash, row.user_role)
        if op is None:
            return
        assert self._nursery is not None, "engine not started"
        try:
            params = self.parse(row.name, self.secret_box.open(row.body))
        except Exception as exc:  # a replaced secrets key, or a body an older server took
            self._nursery.start_soon(self._fail_unresumable, row, exc)
            return
        if has_secrets(row.body):
            self._sealed.add(row.request_id)
        self._start(row.request_id, op, params, user)

    async def _fail_unresumable(self, row: Any, exc: Exception) -> None:
        request_id = row.request_id
        error = wire.encode_error(exc)
        owner = self.replica.server_id
        with trio.CancelScope(shield=True):
            await self.services.store.write(
                lambda conn: rq.finish(
                    conn, request_id, RequestStatus.FAILED, error=error, owner=owner,
                    body=redact,
                )
            )
        self._remember(request_id, row.name, RequestStatus.FAILED, None, error, row.user_hash)

    def _start(
        self, request_id: str, op: Operation, params: Any, user: User, holds_slot: bool = False
    ) -> None:
        assert self._nursery is not None, "engine not started"
        scope = trio.CancelScope()
        self._scopes[request_id] = scope
        self._done[request_id] = trio.Event()
        self._outcome_queued[request_id] = trio.Event()
        self._owners[request_id] = user.hash
        self._users[request_id] = user
        self._nursery.start_soon(self._run, request_id, op, params, user, scope, holds_slot)

    async def _execute(
        self, ctx: RequestContext, op: Operation, params: Any, holds_slot: bool
    ) -> tuple[bool, Any]:
        """Run the handler in a slot of its class; (False, None) if it never started."""
        limiter = self.limiters[op.schedule]
        if not holds_slot:
            await limiter.acquire_on_behalf_of(ctx.request_id)
        try:
            owner = self.replica.server_id
            if not holds_slot and not await self.services.store.write(
                rq.set_running, ctx.request_id, owner
            ):
                return False, None
            return True, await op.handler(ctx, params)
        finally:
            limiter.release_on_behalf_of(ctx.request_id)

    async def _run(
        self,
        request_id: str,
        op: Operation,
        params: Any,
        user: User,
        scope: trio.CancelScope,
        holds_slot: bool,
    ) -> None:
        store = self.services.store
        writer = RequestLogWriter(self.services.logs, request_id, live=op.live_log)
        ctx = RequestContext(request_id, op.name, user, self.services, writer)
        status, result, error = RequestStatus.CANCELLED, None, None
        try:
            with scope:
                ran, value = await self._execute(ctx, op, params, holds_slot)
                if ran:
                    status, result = RequestStatus.SUCCEEDED, wire.encode_result(op.name, value)
            if scope.cancelled_caught:
                status = RequestStatus.CANCELLED
        except Exception as exc:
            status, error = RequestStatus.FAILED, wire.encode_error(exc)
            if not isinstance(exc, SkyhopError):
                import traceback

                writer.write(traceback.format_exc().encode())
            # One line, exactly as the CLI prints it, so the CLI can show it once.
            message = " ".join(str(error["message"]).split()) or "(no message)"
            ctx.log(f"Error: {type(exc).__name__}: {message}")
        finally:
            with trio.CancelScope(shield=True):
                if status is RequestStatus.CANCELLED:
                    error = wire.encode_error(RequestCancelledError("The request was cancelled."))
                    ctx.log("Request cancelled.")
                owner = self.replica.server_id
                # It never runs again: keep only its secrets' names.
                scrub = redact if request_id in self._sealed else None
                self._sealed.discard(request_id)
                unwritten = self._unwritten.pop(request_id, None)
                # Its outcome is queued by the write below before that call yields.
                self._outcome_queued[request_id].set()
                if unwritten is not None:  # never written: one row, already finished
                    await store.write(
                        lambda conn: rq.insert_finished(
                            conn, unwritten, status, result=result, error=error, body=scrub
                        )
                    )
                else:
                    await store.write(
                        lambda conn: rq.finish(
                            conn, request_id, status, result=result, error=error,
                            owner=owner, body=scrub,
                        )
                    )
                writer.close()
                self._remember(
                    request_id, op.name, status, result, error, user.hash, writer.file_bytes
                )
                self._scopes.pop(request_id, None)
                self._owners.pop(request_id, None)
                self._users.pop(request_id, None)
                self._outcome_queued.pop(request_id)
                self._done.pop(request_id).set()

    def _remember(
        self,
        request_id: str,
        name: str,
        status: RequestStatus,
        result: Any,
        error: Any,
        user_hash: str,
        log_bytes: int | None = None,
    ) -> None:
        """Keep recent outcomes in memory so waiting clients need no database read.

        Not long listings (a ``jobs queue`` of thousands of jobs is megabytes): kept by
        the thousand they were most of the server's memory; those are read back from
        the database, once, by the client that waits for them."""
        if isinstance(result, list) and len(result) > CACHED_RESULT_MAX_ITEMS:
            return
        self._finished[request_id] = types.SimpleNamespace(
            request_id=request_id,
            name=name,
            status=status.value,
            result=result,
            error=error,
            user_hash=user_hash,
            log_bytes=log_bytes,
        )
        while len(self._finished) > FINISHED_CACHE_SIZE:
            self._finished.popitem(last=False)

    # --- following and cancelling ----------------------------------------------------------

    async def resolve(self, prefix: str, user_hash: str | None = None) -> str:
        """The full ID of the one request whose ID starts with ``prefix``.

        With ``user_hash`` (a deployed server's non-admin caller) only that user's requests
        match: someone else's request raises the same RequestNotFoundError as one that does
        not exist, so request IDs cannot be probed.
        """
        owner = self._owners.get(prefix)
        if owner is None and prefix in self._finished:
            owner = self._finished[prefix].user_hash
        if owner is not None and (user_hash is None or owner == user_hash):
            return prefix  # a full ID this server knows
        return await self.services.store.run(
            lambda conn: rq.resolve_prefix(conn, prefix, user_hash=user_hash)
        )

    async def is_finished(self, request_id: str) -> bool:
        if request_id in self._done:
            return False
        if request_id in self._finished:
            return True
        row = await self.services.store.run(rq.get_row, request_id)
        return row is None or RequestStatus(row.status).is_terminal()

    def running_user(self, request_id: str) -> User | None:
        """Who submitted a request this replica runs (None: not running here)."""
        return self._users.get(request_id)

    def is_local(self, request_id: str) -> bool:
        """Whether this replica runs the request (so its log writes wake followers)."""
        return request_id in self._done

    async def wait(self, request_id: str) -> Any:
        """Wait until the request is finished; return its row (polling the database for
        a request another replica runs)."""
        event = self._done.get(request_id)
        if event is not None:
            await event.wait()
        if request_id in self._finished:
            return self._finished[request_id]
        while True:
            row = await self.services.store.run(rq.get_row, request_id)
            if row is None or RequestStatus(row.status).is_terminal():
                return row
            await trio.sleep(REMOTE_POLL_SECONDS)

    def cancel_local(self, request_id: str) -> bool:
        scope = self._scopes.get(request_id)
        if scope is not None:
            scope.cancel()
        return scope is not None

    def cancel_all_local(self) -> None:
        for scope in list(self._scopes.values()):
            scope.cancel()

    async def cancel(
        self, request_ids: list[str], *, queued_is_enough: bool = False
    ) -> tuple[list[str], list[str]]:
        """Cancel requests, here or on the replica that runs them; returns (cancelled,
        already finished) once their cleanup is done.

        ``queued_is_enough``: for those running here, return once their CANCELLED row is
        queued for the store rather than committed — for a caller that writes after
        them and answers only after its own commit (the ``api_cancel`` request): the
        store applies writes in order, so both land in one batch instead of two.
        """
        local = [i for i in request_ids if self.cancel_local(i)]
        others = [i for i in request_ids if i not in local]
        # Cancelling what runs here needs no database round trip before its cleanup.
        remote = await self.services.store.run(rq.request_cancel, others) if others else []
        for request_id in local:
            if request_id not in self._done:
                continue
            events = self._outcome_queued if queued_is_enough else self._done
            await events[request_id].wait()
        with trio.move_on_after(REMOTE_CANCEL_WAIT_SECONDS):
            for request_id in remote:
                await self.wait(request_id)
        cancelled = local + remote
        return cancelled, [i for i in request_ids if i not in cancelled]

    async def cancel_cluster_requests(self, cluster_name: str, except_id: str) -> list[str]:
        ids = await self.services.store.run(
            lambda conn: rq.unfinished_ids(conn, cluster_name=cluster_name)
        )
        others = [i for i in ids if i != except_id]
        cancelled, _ = await self.cancel(others)
        return cancelled

