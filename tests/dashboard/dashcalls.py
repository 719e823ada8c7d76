"""Helpers of the dashboard tests: the server's settings, launching, URLs, rows."""

from __future__ import annotations

import io
import random
import threading
from collections.abc import Callable
from typing import Any

from serverproc import ServerProcess, free_port

import skyhop as sky
from skyhop.client import ApiClient, using

__all__ = ["FAST", "TICKING", "DashServer", "free_port", "launch", "row",
           "serve_port_range", "url", "web_task"]

#: Short intervals, so no test waits for production defaults (but no shorter than the
#: tests need: a managed job's controller polling every 0.2 s cost ~0.1 CPU for as long
#: as the job ran, and the managed job now runs from the server's boot).
FAST = {
    "SKYHOP_JOBS_POLL_SECONDS": "1",
    "SKYHOP_LOCAL_SANDBOX": "off",
    "SKYHOP_JOBS_RETRY_BASE": "0.2",
    "SKYHOP_STREAM_HEARTBEAT_SECONDS": "1",
    "SKYHOP_SERVE_PROBE_SECONDS": "1",
    "SKYHOP_SERVE_QPS_WINDOW_SECONDS": "4",
    "SKYHOP_SERVE_DRAIN_SECONDS": "2",
}
#: Job 1 of the ticking cluster: a line every 0.3 s, for as long as the tests run.
TICKING = "for i in $(seq 1 2000); do echo tick $i; sleep 0.3; done"


class DashServer(ServerProcess):
    """A server that boots in a thread: :meth:`boot` starts it and submits the slow
    requests the tests wait for later; :meth:`ready` waits for that; :meth:`result`
    is a submitted request's result (once)."""

    client: ApiClient
    submitted: dict[str, str]

    def boot(self, submit: Callable[[], dict[str, str]]) -> None:
        self._problem: BaseException | None = None
        self._results: dict[str, Any] = {}

        def run() -> None:
            try:
                self.start()
                self.client = ApiClient(self.endpoint, auto_start=False)
                with using(self.client):
                    self.submitted = submit()
            except BaseException as exc:  # re-raised in the test thread by ready()
                self._problem = exc

        self._thread = threading.Thread(target=run, name="dash-server-boot", daemon=True)
        self._thread.start()

    def ready(self) -> DashServer:
        self._thread.join()
        if self._problem is not None:
            raise RuntimeError("the dashboard tests' server did not boot") from self._problem
        return self

    def result(self, name: str) -> Any:
        """The result of the request submitted as ``name`` (its log is not printed)."""
        if name not in self._results:
            self._results[name] = sky.stream_and_get(self.submitted[name],
                                                     output_stream=io.StringIO())
        return self._results[name]

    def stop(self) -> None:
        if getattr(self, "client", None) is not None:
            self.client.close()
        super().stop()


def serve_port_range() -> str:
    """The load balancers' port range of this run (SKYHOP_SERVE_PORTS)."""
    base = random.randrange(32000, 60000, 100)
    return f"{base}-{base + 99}"


def web_task(port: int, python: str) -> dict[str, Any]:
    """One replica of Python's own ``http.server`` on ``port`` (a free port, since
    local nodes here share the host's network); it logs every request it serves."""
    return {
        "name": "dash-web",
        "resources": {"infra": "local"},
        "run": f"exec {python} -u -m http.server {port} --bind 127.0.0.1",
        "service": {
            "readiness_probe": {"path": "/", "initial_delay_seconds": 60},
            "replicas": 1,
            "ports": port,
        },
    }


def launch(cluster: str, run: str, wait: bool = True) -> Any:
    task = sky.Task(run=run, resources=sky.Resources(infra="local"))
    request_id = sky.launch(task, cluster_name=cluster)
    if not wait:
        return request_id
    return sky.stream_and_get(request_id, output_stream=io.StringIO())


def url(server: ServerProcess, path: str) -> str:
    return f"{server.endpoint}/dashboard{path}"


def row(page: Any, selector: str) -> Any:
    return page.locator(f"tr[{selector}]")
