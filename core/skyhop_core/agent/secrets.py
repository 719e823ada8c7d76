"""Handing a job's secrets to the daemon without writing them to disk.

A job spec's ``secrets`` never reach ``agent.db``: ``submit`` stores the spec with only
the secret *names* (``secret_names``) and hands the values to the running daemon over a
Unix socket in the runtime directory (``secrets.sock``; the directory is 0700, the agent
runs with umask 077, so only the node's user can connect). The daemon keeps them in
memory until the job starts, puts them into the job's environment, and forgets them.

The price: a queued job whose daemon dies before it starts has lost its secrets. It
fails (FAILED_DRIVER) with a log line saying so rather than running without them —
after :data:`WAIT_SECONDS`, the time a submitter has to deliver them.

AF_UNIX paths are limited to about 108 bytes and runtime directories can be longer, so
both sides use the socket's name relative to the runtime directory (the daemon runs
there; a client changes into it for the connect).
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

from .layout import Runtime

SOCKET_NAME = "secrets.sock"
#: How long a queued job waits for its secrets before it fails.
WAIT_SECONDS = 30.0
#: How long a submitter keeps trying to reach a daemon that is starting.
CONNECT_SECONDS = 10.0
MAX_MESSAGE = 1 << 20


def listen(runtime: Runtime) -> socket.socket:
    """The daemon's listening socket (replacing a dead daemon's socket file)."""
    path = os.path.join(runtime.root, SOCKET_NAME)
    if os.path.lexists(path):
        os.unlink(path)  # the caller holds the daemon lock: no live daemon uses it
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    cwd = os.getcwd()
    umask = os.umask(0o077)  # no moment in which another user could connect
    os.chdir(runtime.root)
    try:
        sock.bind(SOCKET_NAME)
    finally:
        os.chdir(cwd)
        os.umask(umask)
    sock.listen(16)
    sock.setblocking(False)
    return sock


def receive(listener: socket.socket) -> tuple[int, dict[str, str]] | None:
    """Accept one delivery: (job ID, secrets), or None when nothing valid arrived."""
    try:
        conn, _ = listener.accept()
    except (BlockingIOError, InterruptedError):
        return None
    with conn:
        conn.setblocking(True)
        conn.settimeout(2.0)
        data = b""
        try:
            while not data.endswith(b"\n") and len(data) < MAX_MESSAGE:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            message = json.loads(data)
            job_id = int(message["job_id"])
            values = {str(k): str(v) for k, v in dict(message["secrets"]).items()}
            conn.sendall(b"ok\n")
        except (OSError, ValueError, KeyError, TypeError):
            return None
    return job_id, values


def deliver(runtime: Runtime, job_id: int, values: dict[str, str]) -> None:
    """Give the daemon job ``job_id``'s secrets; raises OSError when it cannot."""
    payload = json.dumps({"job_id": job_id, "secrets": values}).encode() + b"\n"
    deadline = time.monotonic() + CONNECT_SECONDS
    cwd = os.getcwd()
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            os.chdir(runtime.root)
            try:
                sock.connect(SOCKET_NAME)
            finally:
                os.chdir(cwd)
            sock.settimeout(5.0)
            sock.sendall(payload)
            reply = sock.recv(16)
            if reply.startswith(b"ok"):
                return
            raise OSError("the agent daemon did not acknowledge the job's secrets")
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        finally:
            sock.close()


def waiting_too_long(row: Any) -> bool:
    """Whether a queued job has waited past :data:`WAIT_SECONDS` for its secrets."""
    return time.time() - float(row["submitted_at"]) > WAIT_SECONDS
