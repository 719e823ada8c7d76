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
3. Launch what is missing of the latest version — unless the version failed (a replica
   never became ready within its initial delay, or 3 launches failed): then nothing
   more of it is launched until ``serve update``. Extra replicas are drained and torn
   down. Older versions go by the update mode: rolling keeps as many old replicas as the
   target still lacks READY new ones (traffic mixes meanwhile); blue-green sends
   traffic only to the old version until the new one has ``min_replicas`` READY, then
   switches and tears the old ones down. When only ``service:`` changed, the running
   replicas are relabelled to the new version instead.

Resume rules (a restarted server, or another replica after the lease): the load
balancer is bound again on the same port; PENDING/PROVISIONING replicas launch again
(``launch`` finishes or reuses the cluster); SHUTTING_DOWN ones are torn down again
(after their drain); failed ones whose cluster may remain are torn down; a service
with ``down_requested`` is taken down.
"""

from __future__ import annotations

import time
from typing import Any

import attrs
import httpx
import trio

from skyhop_core.models.service_spec import ServiceSpec, parse_service
from skyhop_core.models.status import ReplicaStatus, ServiceStatus
from skyhop_core.requests.context import RequestContext, User
from skyhop_core.requests.logs import RequestLogWriter
from skyhop_core.serve import autoscaler, prober, replicas
from skyhop_core.serve import state as ss
from skyhop_core.serve.load_balancer import LoadBalancer, serve_load_balancer

R = ReplicaStatus
S = ServiceStatus
#: Failed launches of one version after which no more of it is launched.
MAX_PROVISION_FAILURES = 3
_TORN_DOWN = "-"  # the endpoint of a failed replica whose cluster is gone


@attrs.frozen
class Version:
    number: int
    config: dict[str, Any]
    secrets: dict[str, str]
    task: Any
    spec: ServiceSpec
    mode: str

    @property
    def uses_spot(self) -> bool:
        return any(r.use_spot for r in self.task.resources)

    def without_service(self) -> dict[str, Any]:
        return {k: v for k, v in self.config.items() if k != "service"}


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
        self._busy: set[int] = set()
        self._rows: dict[int, Any] = {}
        self._traffic_version: int | None = None
        self._versions: dict[int, Version] = {}
        self._seen_version = 0
        self._nursery: trio.Nursery | None = None

    # --- helpers --------------------------------------------------------------------

    def log(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        self.writer.line(f"{stamp} [{self.name}] {message}")

    def lb_log(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        self.lb_writer.line(f"{stamp} [{self.name}] {message}")

    def wake(self) -> None:
        self._wake.set()

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await self.service.services.store.run(fn, *args)

    async def version(self, number: int) -> Version:
        known = self._versions.get(number)
        if known is None:
            from skyhop_core.ops.common import parse_task

            row = await self._run(ss.version, self.name, number)
            config = dict(row.task)
            secrets = self.service.load_secrets(self.name, number)
            merged = {**config, "secrets": {**(config.get("secrets") or {}), **secrets}}
            task, _ = parse_task(merged if secrets else config)
            known = Version(number, config, secrets, task, parse_service(config["service"]),
                            row.mode)
            self._versions[number] = known
        return known

    # --- the task ---------------------------------------------------------------------

    async def run(self) -> None:
        try:
            with self.scope:
                await self._main()
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            self.log(f"Controller error: {reason}")
            with trio.CancelScope(shield=True):
                await self._run(lambda c: ss.update(
                    c, self.name, status=S.CONTROLLER_FAILED.value, failure_reason=reason))
        finally:
            self.started.set()
            self.writer.close()
            self.lb_writer.close()
            self.service.forget(self.name)

    async def _main(self) -> None:
        row = await self._run(ss.get, self.name)
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
        async with httpx.AsyncClient(trust_env=False) as client, trio.open_nursery() as nursery:
            self._nursery = nursery
            self.http = client
            await self._start_lb(nursery, row, latest.spec)
            self.started.set()
            await self._resume()
            while not await self._round():
                with trio.move_on_after(settings.probe_seconds):
                    await self._wake.wait()
                self._wake = trio.Event()
            nursery.cancel_scope.cancel()

    async def _start_lb(self, nursery: trio.Nursery, row: Any, spec: ServiceSpec) -> None:
        host = self.service.settings.host
        port = row.lb_port
        try:
            await nursery.start(lambda task_status: serve_load_balancer(
                self.lb, host, port, tls=spec.tls, task_status=task_status))
        except OSError as exc:
            # The port was taken meanwhile (e.g. a takeover on another host's range).
            used = await self._run(ss.used_ports)
            port = self.service.free_port(used)
            self.log(f"Port {row.lb_port} is not available ({exc}); moving to {port}.")
            await nursery.start(lambda task_status: serve_load_balancer(
                self.lb, host, port, tls=spec.tls, task_status=task_status))
            endpoint = self.service.endpoint(port)
            await self._run(lambda c: ss.update(c, self.name, lb_port=port, endpoint=endpoint))
        self.log(f"Load balancer listening on {host}:{port}.")
        self.lb_log(f"Listening on {host}:{port} ({spec.load_balancing_policy}).")

    def _connect_failed(self, replica_id: int) -> None:
        self.wake()

    async def _resume(self) -> None:
        for r in await self._run(ss.replicas, self.name):
            if r.status in (R.PENDING.value, R.PROVISIONING.value):
                self.log(f"Resuming: launching replica {r.replica_id} again.")
                self._spawn(r.replica_id, replicas.launch, self, r)
            elif r.status == R.SHUTTING_DOWN.value:
                self._spawn_teardown(r, drain_until=r.drain_until)
            elif R(r.status).is_failed() and r.endpoint not in (None, _TORN_DOWN) \
                    and r.status != R.FAILED_CLEANUP.value:
                self._spawn_teardown(r, keep=R(r.status))

    def _spawn(self, replica_id: int, fn: Any, *args: Any, **kwargs: Any) -> None:
        if replica_id in self._busy:
            return
        self._busy.add(replica_id)
        assert self._nursery is not None

        async def task() -> None:
            try:
                await fn(*args, **kwargs)
            finally:
                self._busy.discard(replica_id)
                self.wake()

        self._nursery.start_soon(task)

    def _spawn_teardown(self, r: Any, *, keep: ReplicaStatus | None = None,
                        drain_until: float | None = None) -> None:
        async def work() -> None:
            ok = await replicas.teardown(self, r.replica_id, r.cluster_name, keep=keep,
                                         drain_until=drain_until)
            if ok and keep is not None:
                await self._run(lambda c: ss.update_replica(
                    c, self.name, r.replica_id, endpoint=_TORN_DOWN))

        self._spawn(r.replica_id, work)

    # --- one round ----------------------------------------------------------------------

    async def _round(self) -> bool:
        """One round; True when the service is gone (or its cleanup failed)."""
        row = await self._run(ss.get, self.name)
        if row is None:
            return True
        if row.down_requested:
            return await self._shutdown(row)
        latest = await self.version(row.version)
        if row.version != self._seen_version:
            await self._on_new_version(row, latest)
        self._traffic_version = row.traffic_version
        self._rows = {r.replica_id: r for r in await self._run(ss.replicas, self.name)}
        self._publish()
        for r in self._rows.values():
            if r.terminate_requested and r.status == R.SHUTTING_DOWN.value \
                    and r.replica_id not in self._busy:
                # `serve down --replica-id` (perhaps through another API server replica).
                self._spawn_teardown(r, drain_until=r.drain_until)
        await self._probe_all()
        rows = list(self._rows.values())
        state = autoscaler.decide(latest.spec.replica_policy, dict(row.autoscaler or {}),
                                  self.lb.qps(), time.time())
        target = autoscaler.launch_target(latest.spec.replica_policy, state)
        failed_version = row.failed_version
        if failed_version != row.version and self._version_failed(rows, row.version):
            failed_version = row.version
            self.log(f"Version {row.version} cannot come up; launching no more of it until "
                     "`skyhop serve update`.")
        values: dict[str, Any] = {"autoscaler": state, "failed_version": failed_version}
        traffic = await self._reconcile(row, latest, rows, target,
                                        failed_version == row.version)
        values["traffic_version"] = traffic
        values["status"] = self._status(row, failed_version).value
        await self._run(lambda c: ss.update(c, self.name, **values))
        return False

    async def _on_new_version(self, row: Any, latest: Version) -> None:
        self._seen_version = row.version
        if latest.spec.load_balancing_policy != type(self.lb.policy).__name__:
            from skyhop_core.serve.policies import make_policy

            wanted = make_policy(latest.spec.load_balancing_policy)
            if type(wanted) is not type(self.lb.policy):
                wanted.in_flight = self.lb.policy.in_flight
                self.lb.policy = wanted
        if row.version <= 1:
            return
        previous = await self.version(row.version - 1)
        if previous.without_service() == latest.without_service() \
                and previous.secrets == latest.secrets:
            moved = await self._run(ss.relabel, self.name, row.version - 1, row.version)
            if moved:
                self.log(f"Only the service section changed: {moved} replica(s) relabelled "
                         f"to version {row.version}.")
                if row.traffic_version is not None:
                    await self._run(lambda c: ss.update(c, self.name,
                                                        traffic_version=row.version))

    def _version_failed(self, rows: list[Any], number: int) -> bool:
        mine = [r for r in rows if r.version == number]
        if any(r.status == R.FAILED_INITIAL_DELAY.value for r in mine):
            return True
        return sum(r.status == R.FAILED_PROVISION.value for r in mine) >= MAX_PROVISION_FAILURES

    def _publish(self) -> None:
        """The load balancer's ready set from the rows as they are now."""
        ready = {
            rid: r.endpoint for rid, r in self._rows.items()
            if r.status == R.READY.value and not r.terminate_requested and r.endpoint
            and (self._traffic_version is None or r.version == self._traffic_version)
        }
        self.lb.set_ready(ready)

    async def _probe_all(self) -> None:
        probed = [r for r in self._rows.values()
                  if r.status in (R.STARTING.value, R.READY.value, R.NOT_READY.value)
                  and not r.terminate_requested and r.replica_id not in self._busy]
        async with trio.open_nursery() as nursery:
            for r in probed:
                nursery.start_soon(self._probe_one, r)

    async def _probe_one(self, r: Any) -> None:
        version = await self.version(r.version)
        ok = await prober.probe(self.http, r.endpoint, version.spec.readiness_probe)
        now = time.time()
        status, values = prober.next_status(
            R(r.status), ok, now=now, starting_since=r.starting_since,
            not_ready_since=r.not_ready_since,
            initial_delay=version.spec.readiness_probe.initial_delay_seconds,
            not_ready_timeout=self.service.settings.not_ready_seconds,
        )
        if not ok and r.status != R.STARTING.value and await self._cluster_gone(r):
            status, values = R.PREEMPTED, {"failure_reason": "Its cluster is not UP."}
        if status.value == r.status and not values:
            return
        applied = await self._run(lambda c: ss.probed(c, self.name, r.replica_id, r.status,
                                                      status=status.value, **values))
        current = await self._run(ss.replica, self.name, r.replica_id)
        if not applied:
            if current is not None:
                self._rows[r.replica_id] = current
                self._publish()
            return
        if current is None:
            return
        self._rows[r.replica_id] = current
        self._publish()  # before anything else: the ready set follows the probe at once
        if status.value != r.status:
            self.log(f"Replica {r.replica_id}: {r.status} -> {status.value}"
                     + (f" ({values['failure_reason']})" if "failure_reason" in values else ""))
        if status is R.PREEMPTED:
            self._spawn_teardown(current)
        elif status.is_failed():
            self._spawn_teardown(current, keep=status)

    async def _cluster_gone(self, r: Any) -> bool:
        from skyhop_core.models.records import NodeState
        from skyhop_core.models.status import ClusterStatus
        from skyhop_core.state import clusters as cl

        record = await self._run(cl.get, r.cluster_name)
        if record is None or record.status is not ClusterStatus.UP or record.handle is None:
            return True
        services = self.service.services
        handle = record.handle
        try:
            nodes = await services.backends.call(
                handle.backend, "skyhop_query", ctx=services.backend_ctx(handle.backend, self.ctx),
                handle=handle,
            )
        except Exception:
            return False  # a backend that cannot tell: trust the probes
        return len(nodes) != len(handle.nodes) or any(n.state is not NodeState.RUNNING
                                                      for n in nodes)

    # --- reconciling --------------------------------------------------------------------

    async def _reconcile(self, row: Any, latest: Version, rows: list[Any], target: int,
                         failed: bool) -> int | None:
        """Launch/terminate toward the target; returns the traffic version."""
        alive = [r for r in rows if R(r.status).is_alive() and not r.terminate_requested]
        new = [r for r in alive if r.version == row.version]
        ready_new = [r for r in new if r.status == R.READY.value]
        old = [r for r in alive if r.version != row.version]
        if not failed:
            for _ in range(target - len(new)):
                await self._add_replica(row, latest, new)
        if len(new) > target:
            # Not-yet-ready ones first, newest first.
            extra = sorted(new, key=lambda r: (r.status == R.READY.value, -r.replica_id))
            for r in extra[: len(new) - target]:
                await self._terminate(r, "scaling down")
        traffic = row.traffic_version
        if latest.mode == "blue_green" and traffic is not None and traffic != row.version:
            need = max(1, latest.spec.replica_policy.min_replicas)
            if len(ready_new) >= min(need, max(target, 1)) and not failed:
                traffic = row.version
                self._traffic_version = traffic
                self._publish()
                self.log(f"Blue-green: version {row.version} has {len(ready_new)} ready "
                         "replica(s); traffic switched to it.")
            else:
                return traffic  # the old version keeps serving, untouched
        if old and not failed:
            keep = 0 if latest.mode == "blue_green" else max(0, target - len(ready_new))
            doomed = sorted(old, key=lambda r: (r.status == R.READY.value, r.replica_id))
            for r in doomed[: max(0, len(old) - keep)]:
                await self._terminate(r, f"replaced by version {row.version}")
        return traffic

    async def _add_replica(self, row: Any, latest: Version, new: list[Any]) -> None:
        policy = latest.spec.replica_policy
        is_spot = latest.uses_spot
        if is_spot:
            ondemand = sum(not r.is_spot for r in new)
            wanted = policy.base_ondemand_fallback_replicas
            if policy.dynamic_ondemand_fallback:
                ready_spot = sum(r.is_spot and r.status == R.READY.value for r in new)
                wanted += max(0, autoscaler.launch_target(policy, row.autoscaler or {})
                              - ready_spot - wanted)
            is_spot = ondemand >= wanted
        replica_id, cluster = await self._run(
            lambda c: ss.add_replica(c, self.name, row.version, is_spot=is_spot))
        r = await self._run(ss.replica, self.name, replica_id)
        new.append(r)
        self._rows[replica_id] = r
        self._spawn(replica_id, replicas.launch, self, r)

    async def _terminate(self, r: Any, why: str, *, drain: bool = True) -> None:
        drain_until = time.time() + (self.service.settings.drain_seconds if drain else 0)
        await self._run(lambda c: ss.update_replica(
            c, self.name, r.replica_id, status=R.SHUTTING_DOWN.value, terminate_requested=True,
            drain_until=drain_until))
        self.log(f"Terminating replica {r.replica_id} ({why}).")
        current = await self._run(ss.replica, self.name, r.replica_id)
        self._rows[r.replica_id] = current
        self._publish()
        self._spawn_teardown(current, drain_until=drain_until)

    def _status(self, row: Any, failed_version: int | None) -> ServiceStatus:
        rows = list(self._rows.values())
        if self.lb.ready:
            return S.READY
        alive = [r for r in rows if R(r.status).is_alive()]
        if failed_version == row.version and not any(r.version == row.version for r in alive):
            return S.FAILED
        if alive:
            return S.REPLICA_INIT
        return S.NO_REPLICA

    # --- down -------------------------------------------------------------------------

    async def _shutdown(self, row: Any) -> bool:
        self.log("Shutting down: removing the load balancer and every replica.")
        await self._run(lambda c: ss.update(c, self.name, status=S.SHUTTING_DOWN.value))
        self.lb.set_ready({})
        assert self._nursery is not None
        self._nursery.cancel_scope.cancel()  # the load balancer and replica tasks
        failures: list[str] = []
        with trio.CancelScope(shield=True):
            rows = await self._run(ss.replicas, self.name)

            async def down(r: Any) -> None:
                if r.endpoint == _TORN_DOWN:
                    return
                await self._run(lambda c: ss.update_replica(
                    c, self.name, r.replica_id, status=R.SHUTTING_DOWN.value))
                if not await replicas.teardown(self, r.replica_id, r.cluster_name):
                    failures.append(r.cluster_name)

            async with trio.open_nursery() as nursery:
                for r in rows:
                    nursery.start_soon(down, r)
            if failures and not row.purge:
                reason = (f"Could not tear down {', '.join(failures)}; see `skyhop serve logs "
                          f"{self.name} --controller`, then `skyhop serve down {self.name} "
                          "--purge`.")
                self.log(reason)
                await self._run(lambda c: ss.update(
                    c, self.name, status=S.FAILED_CLEANUP.value, failure_reason=reason,
                    down_requested=False, purge=False))
                return True
            await self._run(ss.delete, self.name)
            self.service.remove_files(self.name)
            self.log("Service is down.")
        return True
