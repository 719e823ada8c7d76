"""The controller of one service: a trio task in the API server that owns the service.

It serves the load balancer, probes the replicas, asks the autoscaler for the latest
version's replica count, launches and tears down replicas, rolls updates, and writes
the service's status — computed from all of its replicas — after every round.

A round (every ``SKYHOP_SERVE_PROBE_SECONDS``, or at once when woken):

1. Probe every replica with an endpoint; each result is applied to the load balancer's
   ready set at once. A replica whose cluster is gone is PREEMPTED; one that fails past
   its limits is FAILED_* (see :func:`~skyhop_core.serve.prober.next_status`). Failed
   and preempted replicas are torn down; failed rows stay visible until purged.
2. The autoscaler's target (persisted in the row) for the latest version.
3. Launch what is missing of the latest version (a spot version splits its count into
   spot and on-demand replicas, see :func:`~skyhop_core.serve.reconcile.spot_split`) —
   unless the version failed (a replica never became ready within its initial delay, or
   3 launches failed): then nothing more of it is launched until ``serve update``. Extra
   replicas are drained and torn down. Older versions go by the update mode: rolling
   keeps as many old replicas as the target still lacks READY new ones (traffic mixes
   meanwhile); blue-green sends traffic only to the old version until the new one has
   ``min_replicas`` READY, then switches and tears the old ones down. When only
   ``service:`` changed, the running replicas are relabelled to the new version instead.

The steps live in :mod:`.prober` (1), :mod:`.autoscaler` (2), :mod:`.reconcile` (3 and
``serve down``) and :mod:`.versions` (what a new version changes).

Resume rules (a restarted server, or another replica after the lease): the load
balancer is bound again on the same port; PENDING/PROVISIONING replicas launch again
(``launch`` finishes or reuses the cluster); SHUTTING_DOWN ones are torn down again
(after their drain); failed ones whose cluster may remain are torn down; a service
with ``down_requested`` is taken down.
"""

from __future__ import annotations

import errno
import ssl
import time
from typing import Any

import httpx
import trio

from skyhop_core.exceptions import reason_of
from skyhop_core.models.service_spec import TlsConfig
from skyhop_core.models.status import ReplicaStatus, ServiceStatus
from skyhop_core.requests.context import RequestContext, User
from skyhop_core.requests.logs import RequestLogWriter
from skyhop_core.serve import autoscaler, prober, reconcile, replicas, versions
from skyhop_core.serve import state as ss
from skyhop_core.serve.load_balancer import LoadBalancer, serve_load_balancer
from skyhop_core.serve.service import STABLE_SECONDS
from skyhop_core.serve.versions import Version

R = ReplicaStatus
S = ServiceStatus


class ServiceController:
    """Drives one service; started by :class:`~skyhop_core.serve.service.ServeService`."""

    def __init__(self, service: Any, name: str) -> None:
        self.service = service
        self.name = name
        self.scope = trio.CancelScope()
        self.writer = RequestLogWriter(service.hub, f"{name}.controller")
        self.lb_writer = RequestLogWriter(service.hub, f"{name}.load_balancer")
        self.ctx: RequestContext = None  # type: ignore[assignment]  # set in _main
        self.lb: LoadBalancer = None  # type: ignore[assignment]  # set in _main
        self.started = trio.Event()
        self._wake = trio.Event()
        #: Replicas with a launch or teardown task running.
        self.busy: set[int] = set()
        #: The replica rows as this round knows them.
        self.rows: dict[int, Any] = {}
        #: Blue-green: the only version that gets traffic (None: every READY replica).
        self.traffic_version: int | None = None
        self.nursery: trio.Nursery | None = None
        self.http: httpx.AsyncClient = None  # type: ignore[assignment]  # set in _main
        self._versions: dict[int, Version] = {}
        self._seen_version = 0
        #: The version whose TLS files the load balancer serves (None: plain HTTP).
        self.tls_version: int | None = None
        self._born = time.monotonic()

    # --- helpers --------------------------------------------------------------------

    def log(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        self.writer.line(f"{stamp} [{self.name}] {message}")

    def lb_log(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        self.lb_writer.line(f"{stamp} [{self.name}] {message}")

    def wake(self) -> None:
        self._wake.set()

    async def woken(self) -> None:
        """Wait for the next :meth:`wake`."""
        self._wake = trio.Event()
        await self._wake.wait()

    async def store_run(self, fn: Any, *args: Any) -> Any:
        return await self.service.services.store.run(fn, *args)

    async def version(self, number: int) -> Version:
        known = self._versions.get(number)
        if known is None:
            known = self._versions[number] = await versions.load(self, number)
        return known

    # --- the task ---------------------------------------------------------------------

    async def run(self) -> str | None:
        """Run until the service is gone, or cancelled (None), or until the controller
        fails: then the service is CONTROLLER_FAILED and the reason is returned (the
        serve service decides whether to restart it). Call :meth:`close` after."""
        try:
            with self.scope:
                await self._main()
        except Exception as exc:
            reason = reason_of(exc)
            self.log(f"Controller error: {reason}")
            with trio.CancelScope(shield=True):
                await self.store_run(ss.controller_failed, self.name, reason)
            return reason
        finally:
            self.started.set()
        return None

    def close(self) -> None:
        self.writer.close()
        self.lb_writer.close()

    async def _main(self) -> None:
        row = await self.store_run(ss.get, self.name)
        if row is None or (row.status == S.FAILED_CLEANUP.value and not row.down_requested):
            return
        self.ctx = RequestContext(
            request_id=f"serve-{self.name}", name="serve_controller",
            user=User(row.user_name, row.user_hash), services=self.service.services,
            writer=self.writer,
        )
        latest = await self.version(row.version)
        settings = self.service.settings
        self.lb = LoadBalancer(
            self.name, latest.spec.load_balancing_policy, qps_window=settings.qps_window,
            on_connect_failure=self._connect_failed, log=self.lb_log,
        )
        self.lb.restore_window((row.autoscaler or {}).get("window"))
        # Probes open a new connection each (no keep-alive): a probe checks that the
        # replica accepts one, and a pooled connection to a replica that is gone could hang
        # the probe of a new replica at the same address for its whole timeout.
        no_reuse = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(trust_env=False, limits=no_reuse) as client, \
                trio.open_nursery() as nursery:
            self.nursery = nursery
            self.http = client
            await self._start_lb(nursery, row, latest)
            self.started.set()
            await self._resume()
            while not await self._round():
                with trio.move_on_after(settings.probe_seconds):
                    await self._wake.wait()
                self._wake = trio.Event()
            nursery.cancel_scope.cancel()

    async def _start_lb(self, nursery: trio.Nursery, row: Any, latest: Version) -> None:
        host = self.service.settings.host
        port = row.lb_port
        tls = None
        if latest.spec.tls is not None:
            keyfile, certfile = self.service.tls_paths(self.name, latest.number)
            tls = TlsConfig(keyfile=str(keyfile), certfile=str(certfile))
        try:
            await nursery.start(lambda task_status: serve_load_balancer(
                self.lb, host, port, tls=tls, task_status=task_status))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise  # e.g. the TLS files are gone: the controller fails, saying so
            # The port was taken meanwhile (e.g. a takeover on another host's range).
            used = await self.store_run(ss.used_ports)
            port = self.service.free_port(used)
            self.log(f"Port {row.lb_port} is not available ({exc}); moving to {port}.")
            await nursery.start(lambda task_status: serve_load_balancer(
                self.lb, host, port, tls=tls, task_status=task_status))
            endpoint = self.service.endpoint(port, tls=tls is not None)
            await self.store_run(lambda c: ss.update(c, self.name, lb_port=port,
                                                     endpoint=endpoint))
        self.tls_version = latest.number if tls else None
        scheme = "HTTPS" if tls else "HTTP"
        self.log(f"Load balancer listening on {host}:{port} ({scheme}).")
        self.lb_log(f"Listening on {host}:{port} ({scheme}, "
                    f"{latest.spec.load_balancing_policy}).")

    async def use_certificate_of(self, number: int) -> None:
        """Serve version ``number``'s TLS files from now on, if they differ from those
        served (``serve update`` with a renewed certificate): new connections get it,
        the port and open connections stay. Files that no longer load are logged and
        the served ones kept."""
        if self.tls_version is None or self.tls_version == number:
            return
        new = self.service.tls_paths(self.name, number)
        served = self.service.tls_paths(self.name, self.tls_version)

        def changed() -> bool:  # blocking: reads the files and loads the new pair
            if all(a.read_bytes() == b.read_bytes() for a, b in zip(new, served, strict=True)):
                return False
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                certfile=new[1], keyfile=new[0])
            return True

        try:
            if await trio.to_thread.run_sync(changed):
                self.lb.use_certificate(certfile=str(new[1]), keyfile=str(new[0]))
                self.log(f"Load balancer: new TLS connections get version {number}'s "
                         "certificate.")
                self.lb_log(f"Serving version {number}'s TLS certificate.")
        except (OSError, ssl.SSLError, ValueError) as exc:
            self.log(f"Version {number}'s TLS files cannot be used ({exc}); the load "
                     f"balancer keeps version {self.tls_version}'s certificate.")
            return
        self.tls_version = number

    def _connect_failed(self, replica_id: int) -> None:
        self.wake()

    async def _resume(self) -> None:
        for r in await self.store_run(ss.replicas, self.name):
            if r.status in (R.PENDING.value, R.PROVISIONING.value):
                self.log(f"Resuming: launching replica {r.replica_id} again.")
                self.spawn(r.replica_id, replicas.launch, self, r)
            elif r.status == R.SHUTTING_DOWN.value:
                self.spawn_teardown(r, drain_until=r.drain_until)
            elif R(r.status).is_failed() and r.endpoint not in (None, replicas.TORN_DOWN) \
                    and r.status != R.FAILED_CLEANUP.value:
                self.spawn_teardown(r, keep=R(r.status))

    def spawn(self, replica_id: int, fn: Any, *args: Any, **kwargs: Any) -> None:
        if replica_id in self.busy:
            return
        self.busy.add(replica_id)
        assert self.nursery is not None

        async def task() -> None:
            try:
                await fn(*args, **kwargs)
            finally:
                self.busy.discard(replica_id)
                self.wake()

        self.nursery.start_soon(task)

    def spawn_teardown(self, r: Any, *, keep: ReplicaStatus | None = None,
                        drain_until: float | None = None) -> None:
        async def work() -> None:
            ok = await replicas.teardown(self, r.replica_id, r.cluster_name, keep=keep,
                                         drain_until=drain_until)
            if ok and keep is not None:
                await self.store_run(lambda c: ss.update_replica(
                    c, self.name, r.replica_id, endpoint=replicas.TORN_DOWN))

        self.spawn(r.replica_id, work)

    # --- one round ----------------------------------------------------------------------

    async def _round(self) -> bool:
        """One round; True when the service is gone (or its cleanup failed)."""
        row = await self.store_run(ss.get, self.name)
        if row is None:
            return True
        if row.down_requested:
            return await reconcile.shutdown(self, row)
        latest = await self.version(row.version)
        if row.version != self._seen_version:
            self._seen_version = row.version
            await versions.on_new_version(self, row, latest)
        self.traffic_version = row.traffic_version
        self.rows = {r.replica_id: r for r in await self.store_run(ss.replicas, self.name)}
        self.publish()
        for r in self.rows.values():
            if r.terminate_requested and r.status == R.SHUTTING_DOWN.value \
                    and r.replica_id not in self.busy:
                # `serve down --replica-id` (perhaps through another API server replica).
                self.spawn_teardown(r, drain_until=r.drain_until)
        await prober.probe_all(self)
        rows = list(self.rows.values())
        policy = latest.spec.replica_policy
        state = autoscaler.decide(policy, dict(row.autoscaler or {}), self.lb.qps(), time.time())
        state["window"] = self.lb.saved_window()  # survives a restart (see load_balancer)
        failed_version = row.failed_version
        if failed_version != row.version and versions.version_failed(rows, row.version):
            failed_version = row.version
            self.log(f"Version {row.version} cannot come up; launching no more of it until "
                     "`skyhop serve update`.")
        values: dict[str, Any] = {"autoscaler": state, "failed_version": failed_version}
        if row.status == S.CONTROLLER_FAILED.value:
            values["failure_reason"] = None  # restarted: the round went through
            self.log("The controller is running again.")
        if row.controller_restarts and time.monotonic() - self._born > STABLE_SECONDS:
            values["controller_restarts"] = 0
        values["traffic_version"] = await reconcile.reconcile(
            self, row, latest, rows, int(state["target"]),
            autoscaler.launch_target(policy, state), failed_version == row.version)
        values["status"] = reconcile.service_status(self, row, failed_version).value
        if not await self.store_run(lambda c: ss.finish_round(c, self.name, row.version,
                                                              **values)):
            self.wake()  # updated meanwhile: go again from the new row
        return False

    def publish(self) -> None:
        """The load balancer's ready set from the rows as they are now."""
        ready = {
            rid: r.endpoint for rid, r in self.rows.items()
            if r.status == R.READY.value and not r.terminate_requested and r.endpoint
            and (self.traffic_version is None or r.version == self.traffic_version)
        }
        self.lb.set_ready(ready)
