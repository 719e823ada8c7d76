"""``python -m fakegce CONFIG``: serve the fake until SIGTERM, then remove its hosts.

CONFIG (JSON): ``root`` (a directory of its own), ``project``, ``slots`` (host namespaces;
0 = no hosts: instances run but nothing answers SSH), ``step`` (seconds per state change).
The server writes ``credentials.json`` (a service-account key file whose ``token_uri``
is this server) and then ``port`` into ``root``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from fakegce.server import FakeGce, make_handler, serve
from fakegce.world import World


def service_account(root: Path, project: str, base: str) -> tuple[dict[str, str], str]:
    """A fresh RSA key: the key file for clients and the public key the fake verifies."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()  # fmt: skip
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    account = {"type": "service_account", "project_id": project, "private_key_id": "fake1",
               "private_key": private, "client_email": f"skyhop-test@{project}.iam.gserviceaccount.com",
               "client_id": "1234567890", "token_uri": f"{base}/token",
               "auth_uri": f"{base}/auth"}  # fmt: skip
    path = root / "credentials.json"
    path.write_text(json.dumps(account))
    path.chmod(0o600)
    return account, public


def main(config_path: str) -> None:
    config: dict[str, Any] = json.loads(Path(config_path).read_text())
    root = Path(config["root"])
    hosts = None
    if config.get("slots"):
        from fakegce.hosts import GuestHosts

        hosts = GuestHosts(int(config["slots"]))
    stopping = threading.Event()
    try:
        server = serve()
        base = f"http://127.0.0.1:{server.server_address[1]}"
        account, public = service_account(root, config["project"], base)
        world = World(
            config["project"], base + "/compute/v1", root, hosts, float(config.get("step", 0.2))
        )
        server.RequestHandlerClass = make_handler(FakeGce(world, account, public))

        parent = os.getppid()

        def ticker() -> None:
            while not stopping.is_set():
                world.tick()
                time.sleep(0.02)
                if os.getppid() != parent:  # the test process died without stopping us
                    threading.Thread(target=server.shutdown).start()
                    return

        threading.Thread(target=ticker, daemon=True).start()
        signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
        # Renamed into place: the test polls for the file and must never read half of it.
        (root / "port.tmp").write_text(str(server.server_address[1]))
        (root / "port.tmp").rename(root / "port")
        print(f"fakegce on {base}, hosts {hosts.describe() if hosts else None}", flush=True)
        server.serve_forever(poll_interval=0.1)
    finally:
        stopping.set()
        if hosts is not None:
            hosts.close()


if __name__ == "__main__":
    main(sys.argv[1])
