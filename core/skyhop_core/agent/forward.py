"""TCP relays the daemon runs for ``cluster.json``'s ``forwards`` (local port mapping).

The local backend maps a task's declared port to a free host port; while the cluster's
agent runs, connections to the host port are relayed to the declared port on loopback.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from typing import Any


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)


def start_forwarders(forwards: list[dict[str, Any]]) -> dict[str, socket.socket]:
    """Listen on every ``listen`` address and relay to its ``target``.

    Returns the listening sockets by ``listen`` address.
    """
    servers = {}
    for forward in forwards:
        try:
            server = socket.create_server(_split(str(forward["listen"])))
        except OSError as exc:
            print(f"cannot forward {forward}: {exc}", file=sys.stderr, flush=True)
            continue
        target = _split(str(forward["target"]))
        threading.Thread(target=_accept, args=(server, target), daemon=True).start()
        servers[str(forward["listen"])] = server
    return servers


def _accept(server: socket.socket, target: tuple[str, int]) -> None:
    while True:
        try:
            client, _ = server.accept()
        except OSError:
            return
        threading.Thread(target=_bridge, args=(client, target), daemon=True).start()


def _bridge(client: socket.socket, target: tuple[str, int]) -> None:
    try:
        upstream = socket.create_connection(target, timeout=5)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    back = threading.Thread(target=_copy, args=(upstream, client), daemon=True)
    back.start()
    _copy(client, upstream)
    back.join()
    client.close()
    upstream.close()


def _copy(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
