"""The serve service of an API server: the controllers of the services it owns.

One nursery (started from ``server/main.py`` next to the jobs service) holds the lease
loop and one :class:`~skyhop_core.serve.controller.ServiceController` per service this
replica owns. A service belongs to the replica that ran its ``serve up``; the lease loop
renews this replica's leases, passes on ``serve down`` asked through another replica,
and takes over services whose owner died (lease expired or deregistered) — the new
owner binds the same load-balancer port and resumes from the rows
(:meth:`ServiceController.resume`).

Tunables (tests shrink them): ``SKYHOP_SERVE_PORTS`` (the load balancers' port range,
default ``30001-30999``), ``SKYHOP_SERVE_HOST`` (the address they bind and advertise;
default the API server's), ``SKYHOP_SERVE_PROBE_SECONDS`` (10), ``SKYHOP_SERVE_NOT_READY_SECONDS``
(how long a replica that was ready may fail probes before it is replaced; 180),
``SKYHOP_SERVE_QPS_WINDOW_SECONDS`` (60), ``SKYHOP_SERVE_DRAIN_SECONDS`` (120),
``SKYHOP_SERVE_RESTART_BACKOFF_SECONDS`` (5) and ``SKYHOP_SERVE_MAX_CONTROLLER_RESTARTS`` (5).

A controller that fails (the service is CONTROLLER_FAILED, with the reason) is restarted
by this server after a backoff that doubles with every failure in a row (capped at
:data:`MAX_BACKOFF_SECONDS`); after ``SKYHOP_SERVE_MAX_CONTROLLER_RESTARTS`` restarts in a row
it stays CONTROLLER_FAILED, its reason saying so, until ``serve update`` or ``serve down``
starts it again. A controller that has run :data:`STABLE_SECONDS` resets the count.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio

from skyhop_core.requests.logs import LogHub
from skyhop_core.serve import state as ss

if TYPE_CHECKING:
    from skyhop_core.requests.engine import Engine
    from skyhop_core.serve.controller import ServiceController
    from skyhop_core.services import Services


#: The longest wait before restarting a failed controller.
MAX_BACKOFF_SECONDS = 300.0
#: A controller that has run this long without failing starts its count again.
STABLE_SECONDS = 600.0


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def _port_range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    try:
        lo, hi = int(low), int(high or low)
    except ValueError:
        lo, hi = 0, -1
    if not 1 <= lo <= hi <= 65535:
        raise ValueError(f"SKYHOP_SERVE_PORTS={text!r}: use a range such as 30001-30999.")
    return lo, hi


@attrs.frozen
class ServeSettings:
    host: str = "127.0.0.1"
    ports: tuple[int, int] = (30001, 30999)
    probe_seconds: float = 10.0
    not_ready_seconds: float = 180.0
    qps_window: float = 60.0
    drain_seconds: float = 120.0
    restart_backoff: float = 5.0
    max_restarts: int = 5

    @classmethod
    def from_env(cls, host: str = "127.0.0.1") -> ServeSettings:
        return cls(
            host=os.environ.get("SKYHOP_SERVE_HOST") or host,
            ports=_port_range(os.environ.get("SKYHOP_SERVE_PORTS", "30001-30999")),
            probe_seconds=_env_float("SKYHOP_SERVE_PROBE_SECONDS", 10.0),
            not_ready_seconds=_env_float("SKYHOP_SERVE_NOT_READY_SECONDS", 180.0),
            qps_window=_env_float("SKYHOP_SERVE_QPS_WINDOW_SECONDS", 60.0),
            drain_seconds=_env_float("SKYHOP_SERVE_DRAIN_SECONDS", 120.0),
            restart_backoff=_env_float("SKYHOP_SERVE_RESTART_BACKOFF_SECONDS", 5.0),
            max_restarts=int(_env_float("SKYHOP_SERVE_MAX_CONTROLLER_RESTARTS", 5)),
        )

    @property
    def advertised_host(self) -> str:
        if self.host in ("0.0.0.0", "::", ""):
            return socket.gethostname()
        return self.host


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host if host not in ("", "::") else "0.0.0.0", port))
        except OSError:
            return False
    return True


class ServeService:
    """Start with ``await nursery.start(service.serve)`` after the engine is serving."""

    def __init__(self, services: Services, engine: Engine,
                 settings: ServeSettings | None = None) -> None:
        self.services = services
        self.engine = engine
        self.settings = settings or ServeSettings.from_env()
        self.directory = services.persistent_path / "serve"
        self.hub = LogHub(self.directory)
        self.controllers: dict[str, ServiceController] = {}
        self._nursery: trio.Nursery | None = None

    @property
    def owner(self) -> str:
        return self.engine.replica.server_id

    @property
    def lease(self) -> float:
        return self.engine.replica.lease

    # --- files ----------------------------------------------------------------------

    def secrets_path(self, name: str, version: int) -> Path:
        return self.directory / f"{name}.v{version}.secrets.json"

    def save_secrets(self, name: str, version: int, secrets: dict[str, str]) -> None:
        """Secret values live in a 0600 file, never in a row or a log."""
        if not secrets:
            return
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.secrets_path(name, version), os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                     0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(secrets, f)

    def load_secrets(self, name: str, version: int) -> dict[str, str]:
        path = self.secrets_path(name, version)
        return json.loads(path.read_text()) if path.exists() else {}

    def tls_paths(self, name: str, version: int) -> tuple[Path, Path]:
        """(keyfile, certfile) of a version with ``service.tls`` (see :mod:`.tls`)."""
        return (self.directory / f"{name}.v{version}.tls-key.pem",
                self.directory / f"{name}.v{version}.tls-cert.pem")

    def save_tls(self, name: str, version: int, files: Any) -> None:
        """A version's TLS key and certificate, 0600 like its secrets."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        for path, data in zip(self.tls_paths(name, version), (files.key, files.cert),
                              strict=True):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)

    def remove_files(self, name: str) -> None:
        for pattern in (f"{name}.v*.secrets.json", f"{name}.v*.tls-*.pem"):
            for path in self.directory.glob(pattern):
                path.unlink(missing_ok=True)

    def free_port(self, used: set[int]) -> int:
        lo, hi = self.settings.ports
        for port in range(lo, hi + 1):
            if port not in used and port_is_free(self.settings.host, port):
                return port
        raise RuntimeError(
            f"No free load-balancer port in {lo}-{hi} (SKYHOP_SERVE_PORTS); take a service "
            "down or widen the range."
        )

    def endpoint(self, port: int, *, tls: bool = False) -> str:
        return f"{'https' if tls else 'http'}://{self.settings.advertised_host}:{port}"

    # --- lifecycle ------------------------------------------------------------------

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            # Ours from a previous life of this server (same rows, new server ID) are
            # taken over like any dead owner's.
            await self._take_over()
            nursery.start_soon(self._lease_loop)
            task_status.started()
            await trio.sleep_forever()

    def start(self, name: str) -> None:
        """Run the service's controller here (unless it runs already)."""
        assert self._nursery is not None, "serve service not started"
        if name in self.controllers:
            return
        self._nursery.start_soon(self._supervise, name)
        self._new_controller(name)

    def _new_controller(self, name: str) -> ServiceController:
        from skyhop_core.serve.controller import ServiceController

        controller = self.controllers[name] = ServiceController(self, name)
        return controller

    async def _supervise(self, name: str) -> None:
        """The service's controller, restarted after a failure (see the module)."""
        store = self.services.store
        controller = self.controllers[name]
        try:
            while True:
                reason = await controller.run()
                if reason is None:
                    return
                restarts = await store.run(lambda c: ss.get(c, name).controller_restarts)
                if restarts >= self.settings.max_restarts:
                    final = (f"{reason} (the controller failed {restarts + 1} times, never "
                             f"running {STABLE_SECONDS / 60:g} minutes in between, and is not "
                             f"restarted again; see `skyhop serve logs {name} "
                             f"--controller`, then `skyhop serve update` or `skyhop serve "
                             f"down {name}`)")
                    controller.log(f"Giving up: {final}")
                    await store.run(lambda c, why=final: ss.update(c, name, failure_reason=why))
                    return
                delay = min(MAX_BACKOFF_SECONDS, self.settings.restart_backoff * 2 ** restarts)
                controller.log(f"Restarting the controller in {delay:.1f} s (restart "
                               f"{restarts + 1} of at most {self.settings.max_restarts}).")
                with trio.move_on_after(delay):
                    await controller.woken()  # `serve down` meanwhile: at once
                controller.close()
                row = await store.run(ss.get, name)
                if row is None or row.owner != self.owner:
                    return
                await store.run(lambda c, n=restarts + 1: ss.update(c, name,
                                                                   controller_restarts=n))
                controller = self._new_controller(name)
        finally:
            controller.close()
            if self.controllers.get(name) is controller:
                del self.controllers[name]

    def wake(self, name: str) -> bool:
        controller = self.controllers.get(name)
        if controller is None:
            return False
        controller.wake()
        return True

    async def _lease_loop(self) -> None:
        store = self.services.store
        while True:
            await trio.sleep(self.lease / 3)
            for name in await store.run(ss.renew, self.owner, self.lease):
                self.wake(name)  # `serve down` asked through another replica
            # Rows we run but no longer own (declared dead after a long pause): stop.
            owned = set(await store.run(ss.owned, self.owner))
            for name, controller in list(self.controllers.items()):
                if name not in owned:
                    controller.scope.cancel()
            await self._take_over()

    async def _take_over(self) -> None:
        for name in await self.services.store.run(ss.take_over, self.owner, self.lease):
            self.start(name)
