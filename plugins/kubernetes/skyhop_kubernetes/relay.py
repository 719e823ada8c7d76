"""The relay between pods (see :mod:`skyhop_kubernetes.relay_node`): its file, port, argv."""

from __future__ import annotations

import os

PORT = 7077
FILE_NAME = "skyhop_k8s_relay.py"
TOKEN_FILE = "relay.token"


def source_path() -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "relay_node.py")


def launcher(head_runtime: str, ip: str) -> list[str]:
    """The argv prefix the head's agent runs a command on the pod at ``ip`` with."""
    return ["python3", f"{head_runtime}/pkg/{FILE_NAME}", "run", ip, str(PORT),
            f"{head_runtime}/{TOKEN_FILE}"]  # fmt: skip


def serve_command(runtime: str) -> str:
    """A shell line that starts the relay in the background (its own session) once."""
    return (
        f"cd {runtime} && if ! [ -e relay.pid ] || ! kill -0 $(cat relay.pid) 2>/dev/null; "
        f"then setsid python3 pkg/{FILE_NAME} serve {PORT} {TOKEN_FILE} "
        f"</dev/null >relay.log 2>&1 & echo $! > relay.pid; fi"
    )
