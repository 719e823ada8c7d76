"""A hostile (or just unlucky) HTTP/2 client cannot stop the API server: one DATA frame
for a stream hypercorn has already answered raised KeyError in its h2 code, and its
trio worker let that end the whole server. The guard (server/connguard.py) ends only
that connection. A real server under hypercorn, a raw HTTP/2 client (the h2 library
hypercorn itself uses) over cleartext, then an ordinary request."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlparse

import httpx
import pytest
from serverproc import ServerProcess


def late_data_on_an_answered_stream(endpoint: str) -> None:
    """HTTP/2 with prior knowledge: a POST whose body comes after the server answered."""
    h2_connection = pytest.importorskip("h2.connection")
    h2_config = pytest.importorskip("h2.config")
    url = urlparse(endpoint)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        conn = h2_connection.H2Connection(h2_config.H2Configuration(client_side=True))
        conn.initiate_connection()
        conn.send_headers(1, [(":method", "POST"), (":path", "/api/no-such-route"),
                              (":scheme", "http"), (":authority", url.netloc)])  # fmt: skip
        sock.sendall(conn.data_to_send())
        time.sleep(0.5)  # answered (404) and the stream closed on the server's side
        # A DATA frame on stream 1, END_STREAM set, written raw (the client's own state
        # machine knows the stream is closed and would refuse).
        sock.sendall(b"\x00\x00\x05\x00\x01\x00\x00\x00\x01" + b"hello")
        time.sleep(0.5)


def test_a_broken_http2_connection_does_not_stop_the_server(make_server) -> None:
    server: ServerProcess = make_server()
    late_data_on_an_answered_stream(server.endpoint)
    response = httpx.get(server.endpoint + "/api/health", timeout=10)
    assert response.status_code == 200, response.text
    assert server.proc is not None and server.proc.poll() is None, server.log()
    assert "A client connection failed in the HTTP server and was closed" in server.log()


def test_the_guard_refuses_a_hypercorn_whose_tcp_server_moved(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If a hypercorn release stops using ``run.TCPServer``, installing the guard fails
    (the server does not start) instead of leaving connections unguarded."""
    from hypercorn.trio import run

    from skyhop_core.server.connguard import guard_connections

    monkeypatch.setattr(run, "TCPServer", type("Elsewhere", (), {}))
    with pytest.raises(RuntimeError, match="cannot guard the server"):
        guard_connections()
