"""A TCP proxy on loopback that drops every connection after a while, as a load balancer
with an idle or maximum-lifetime timeout does: for testing clients that must reconnect."""

from __future__ import annotations

import contextlib
import socket
import threading


class DroppingProxy:
    """Forwards ``127.0.0.1:<port>`` to ``upstream``; closes each connection ``lifetime``
    seconds after it was accepted. ``dropped`` counts the connections it cut."""

    def __init__(self, upstream_port: int, lifetime: float) -> None:
        self.upstream_port = upstream_port
        self.lifetime = lifetime
        self.dropped = 0
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> DroppingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self._thread.join(5)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            done = threading.Event()
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b, done), daemon=True).start()
            threading.Thread(target=self._cut, args=(client, upstream, done), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, done: threading.Event) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            done.set()
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def _cut(self, client: socket.socket, upstream: socket.socket, done: threading.Event) -> None:
        if not done.wait(self.lifetime):
            with self._lock:
                self.dropped += 1
        for s in (client, upstream):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()
