"""``python -m fakekube CONFIG.json``: serve one fake cluster on loopback until SIGTERM.

The config: ``{"port": 0, "token": "...", "root": "/tmp/...", "tag": "ab12", "subnet": 37,
"namespaces": ["default"], "nodes": [{"name": "n1", "cpu": "4", "memory": "8Gi",
"gpus": {"nvidia.com/gpu": "2"}, "labels": {...}, "taints": [...]}]}``. The chosen port
is written to ``<root>/port`` once the server listens.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from .app import FakeCluster, make_app
from .kubelet import Kubelet
from .store import Store


def node_object(spec: dict[str, Any]) -> dict[str, Any]:
    allocatable = {
        "cpu": str(spec.get("cpu", "4")),
        "memory": str(spec.get("memory", "8Gi")),
        "pods": "110",
        **{k: str(v) for k, v in (spec.get("gpus") or {}).items()},
    }
    labels = {"kubernetes.io/hostname": spec["name"], "kubernetes.io/os": "linux",
              **(spec.get("labels") or {})}  # fmt: skip
    return {"metadata": {"name": spec["name"], "labels": labels},
            "spec": {"taints": spec.get("taints") or [],
                     **({"unschedulable": True} if spec.get("unschedulable") else {})},
            "status": {"allocatable": allocatable, "capacity": dict(allocatable),
                       "conditions": [{"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": "10.214.0.1"}]}}  # fmt: skip


async def main(config_path: str) -> None:
    cfg = json.loads(Path(config_path).read_text())
    root = Path(cfg["root"])
    store = Store()
    for ns in cfg.get("namespaces") or ["default"]:
        store.create("namespaces", "", {"metadata": {"name": ns}, "spec": {},
                                        "status": {"phase": "Active"}})  # fmt: skip
    for node in cfg.get("nodes") or []:
        store.create("nodes", "", node_object(node))
    kubelet = Kubelet(store, root, cfg["tag"], int(cfg["subnet"]))
    kubelet.setup()
    cluster = FakeCluster(store, kubelet, cfg["token"])
    hyper = Config()
    hyper.bind = [f"127.0.0.1:{cfg.get('port', 0)}"]
    hyper.accesslog = None
    if cfg.get("certfile"):
        hyper.certfile, hyper.keyfile = cfg["certfile"], cfg["keyfile"]
    hyper.graceful_timeout = 1
    # HTTP/1.1 only: kubectl (Go) negotiates HTTP/2, and hypercorn's h2 protocol raised
    # KeyError for a frame of a stream it had already closed (seen once in a full run),
    # which ended the whole fake server. skyhop's client speaks HTTP/1.1 either way.
    hyper.alpn_protocols = ["http/1.1"]
    try:
        async with trio.open_nursery() as nursery:
            cluster.nursery = nursery
            nursery.start_soon(cluster.schedule_loop)
            stop = trio.Event()

            async def on_signals() -> None:
                with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    async for _ in signals:
                        stop.set()
                        return

            nursery.start_soon(on_signals)
            binds = await nursery.start(serve_app, make_app(cluster), hyper, stop)
            port = binds[0].rsplit(":", 1)[1]
            # Renamed into place: the test polls for the file and must never read half of it.
            (root / "port.tmp").write_text(port)
            (root / "port.tmp").rename(root / "port")
            await stop.wait()
            nursery.cancel_scope.cancel()
    finally:
        kubelet.close()


async def serve_app(app: Any, hyper: Config, stop: trio.Event,
                    task_status: Any = trio.TASK_STATUS_IGNORED) -> None:  # fmt: skip
    await serve(app, hyper, shutdown_trigger=stop.wait, task_status=task_status)


if __name__ == "__main__":
    trio.run(main, sys.argv[1])
