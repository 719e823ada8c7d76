"""Run the API server: ``python -m skyhop_core.server --host 127.0.0.1 --port 46590``.

``--deploy`` runs a shared team server: callers authenticate with service-account
tokens (``skyhop api tokens create NAME``) and identity headers are ignored.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import trio

if TYPE_CHECKING:
    from skyhop_core.state.db import Store


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="skyhop-server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=46590)
    parser.add_argument(
        "--deploy",
        action="store_true",
        help="Serve a team: require bearer tokens (skyhop api tokens create NAME).",
    )
    return parser.parse_args(argv)


async def serve(host: str, port: int, deploy: bool = False) -> None:
    from hypercorn.config import Config
    from hypercorn.trio import serve as hypercorn_serve

    from skyhop_core.server.connguard import guard_connections

    guard_connections()  # one client's broken connection must not stop the server

    from skyhop_core.jobs.service import JobsService
    from skyhop_core.models.task_schema import warm_up
    from skyhop_core.ops.registry import operations
    from skyhop_core.paths import (
        ensure_persistent_path,
        load_config,
        replica_dir,
        write_private,
    )
    from skyhop_core.plugins import load_backends
    from skyhop_core.requests.engine import Engine, slot_limits
    from skyhop_core.requests.warmup import WarmUp
    from skyhop_core.serve.service import ServeService, ServeSettings
    from skyhop_core.server.app import build_app
    from skyhop_core.server.autostop import autostop_loop
    from skyhop_core.server.health import health_interval, health_loop
    from skyhop_core.server.uploads import gc_settings, upload_gc_loop
    from skyhop_core.services import Services
    from skyhop_core.state import open_store
    from skyhop_core.storage.in_use import uploads_in_use
    from skyhop_core.storage.uploads import UploadStore

    root = ensure_persistent_path()
    config = load_config()
    store = await trio.to_thread.run_sync(open_store, root)
    services = Services(
        root, store, load_backends(), config=config.get("backends") or {}, deploy=deploy
    )
    retention = float(os.environ.get("SKYHOP_REQUEST_RETENTION_SECONDS", 7 * 24 * 3600))
    engine = Engine(services, operations(), limits=slot_limits(), retention_seconds=retention)
    engine.warm_up = warm = WarmUp(warm_up)
    services.engine = engine
    jobs_service = JobsService(services, engine)
    services.jobs = jobs_service
    serve_service = ServeService(services, engine, ServeSettings.from_env(host))
    services.serve = serve_service
    shutdown = trio.Event()
    app = build_app(engine, shutdown, deploy=deploy)
    if deploy:
        await _announce_deploy(store, host, port)

    hconfig = Config()
    hconfig.bind = [f"{host}:{port}"]
    hconfig.accesslog = None
    hconfig.errorlog = "-"
    hconfig.graceful_timeout = 2.0
    hconfig.keep_alive_timeout = 75.0

    pid_file = replica_dir(port, root) / "server.pid"
    interval = float(os.environ.get("SKYHOP_AUTOSTOP_INTERVAL", "30"))

    async def on_signals() -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                shutdown.set()
                return

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(on_signals)
            await nursery.start(engine.serve)
            await nursery.start(jobs_service.serve)
            await nursery.start(serve_service.serve)
            nursery.start_soon(autostop_loop, engine, interval)
            nursery.start_soon(
                upload_gc_loop, UploadStore(root), *gc_settings(os.environ),
                functools.partial(store.run, uploads_in_use),
            )  # fmt: skip
            nursery.start_soon(health_loop, engine, health_interval())
            write_private(pid_file, f"{os.getpid()} {host} {port}\n")

            async def run_http(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
                try:
                    await hypercorn_serve(
                        app, hconfig, shutdown_trigger=shutdown.wait,  # type: ignore[arg-type]
                        task_status=task_status,
                    )
                finally:
                    pid_file.unlink(missing_ok=True)
                    nursery.cancel_scope.cancel()

            await nursery.start(run_http)
            tune_gc()
            # Once it answers and is quiet: build the task validator (jsonschema) on a
            # thread, so neither start-up nor the first command waits for it.
            nursery.start_soon(warm.when_quiet, lambda: engine.last_submit)
    finally:
        store.close()  # the writer applies what it still holds before the process ends


async def _announce_deploy(store: Store, host: str, port: int) -> None:
    """Say on stderr that authentication is on, and how to create the first token."""
    from skyhop_core.state import tokens

    active = await store.run(tokens.list_tokens)
    print(
        f"skyhop API server deployed on {host}:{port}: bearer tokens required "
        f"({len(active)} active).",
        file=sys.stderr,
    )
    if not active:
        print(
            "No tokens exist yet; create the first (an administrator's) on this machine: "
            "skyhop api tokens create NAME --role admin",
            file=sys.stderr,
        )


#: Allocations (of container objects, net of frees) between two young collections.
GC_YOUNG_THRESHOLD = 20_000


def tune_gc(env: Mapping[str, str] | None = None) -> bool:
    """Make the cyclic garbage collector cheap for a long-running server; False if
    ``SKYHOP_GC_TUNING=0`` asks for CPython's defaults.

    What start-up built (modules, the app, the operation registry) is frozen out of every
    later collection (``gc.freeze``), and young collections run every
    :data:`GC_YOUNG_THRESHOLD` allocations instead of every 700. With the defaults, a
    read spent about 15 % of its CPU in the collector, and each full collection scanned
    the whole heap — the finished-request cache, every managed job's controller —
    pausing the event loop for tens of milliseconds (with 10,000 jobs, far longer; see
    bench/RESULTS.md). Memory in reference cycles is freed a little later; nothing else
    changes.

    Start-up's heap is frozen as it is, without a collection first: collecting it found
    a few dozen garbage objects and took ~45 ms of CPU before the server could answer.
    """
    import gc

    if (os.environ if env is None else env).get("SKYHOP_GC_TUNING", "1") == "0":
        return False
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)
    return True


#: glibc's mallopt parameter for the number of malloc arenas.
_M_ARENA_MAX = -8


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas (as ``MALLOC_ARENA_MAX`` would) before any thread starts.

    Every worker thread (``trio.to_thread``: the database, blocking libraries) otherwise
    gets an arena of its own, up to 8 per CPU, and their fragmentation was a third of the
    server's memory with 1,000 managed jobs running (bench/RESULTS.md). An explicit
    ``MALLOC_ARENA_MAX`` wins; on other C libraries this does nothing.
    """
    import os

    if "MALLOC_ARENA_MAX" in os.environ or not sys.platform.startswith("linux"):
        return
    import contextlib
    import ctypes

    with contextlib.suppress(OSError, AttributeError):  # not glibc (musl: no mallopt)
        ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, arenas)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from skyhop_core.paths import restrict_umask

    # Everything the server and its children (local nodes' agents, rsync, ...) create
    # under the persistent path is private, whatever umask it was started with.
    restrict_umask()
    limit_malloc_arenas()
    try:
        trio.run(serve, args.host, args.port, args.deploy)
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        from skyhop_core.paths import PersistentPathError

        if isinstance(exc, PersistentPathError):
            print(f"Error: {exc}", file=sys.stderr)
            return 2
        raise
    return 0
