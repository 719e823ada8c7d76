"""Helpers for the serve tests: the replica task, waiting on statuses, a WebSocket client.

Importable as ``servecalls`` (tests/serve is put on sys.path by the tests' conftest-free
import below)."""

from __future__ import annotations

import random
import socket
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

import skyhop as sky

APP_DIR = Path(__file__).resolve().parent / "replica_app"
#: Short intervals so the tests do not wait for production defaults.
FAST = {
    "SKYHOP_SERVE_PROBE_SECONDS": "0.3",
    "SKYHOP_SERVE_NOT_READY_SECONDS": "1.5",
    "SKYHOP_SERVE_DRAIN_SECONDS": "20",
    "SKYHOP_SERVE_QPS_WINDOW_SECONDS": "4",
    "SKYHOP_SERVER_LEASE_SECONDS": "3",
    "SKYHOP_SERVE_RESTART_BACKOFF_SECONDS": "1",
    "SKYHOP_SERVE_MAX_CONTROLLER_RESTARTS": "2",
}


def port_range() -> str:
    """A load-balancer port range of this test run's (SKYHOP_SERVE_PORTS)."""
    base = random.randrange(32000, 60000, 100)
    return f"{base}-{base + 99}"


def node_network_config() -> Any:
    """``tests/plugins/local/netconfig.py``: node networks on a bridge of the tests'."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "plugins" / "local" / "netconfig.py"
    spec = importlib.util.spec_from_file_location("serve_netconfig", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.node_network_config()


def service_task(*, version: int = 1, replicas: int | None = 2, policy: dict | None = None,
                 probe: Any = None, **service: Any) -> dict[str, Any]:
    """A service whose replicas run ``replica_app/app.py`` (hypercorn on port 8080)."""
    section: dict[str, Any] = {
        "readiness_probe": probe or {"path": "/health", "initial_delay_seconds": 60},
        "ports": 8080, **service,
    }
    if policy is not None:
        section["replica_policy"] = policy
    elif replicas is not None:
        section["replicas"] = replicas
    return {
        "name": "web",
        "workdir": str(APP_DIR),
        "resources": {"infra": "local"},
        "envs": {"VERSION": str(version)},
        "run": f"exec {sys.executable} app.py 8080",
        "service": section,
    }


def record(name: str) -> dict[str, Any]:
    records = sky.get(sky.serve.status(name))
    assert len(records) == 1, records
    return records[0]


def replicas(name: str) -> dict[int, tuple[str, int]]:
    """replica ID -> (status, version)."""
    return {r["replica_id"]: (r["status"].value, r["version"])
            for r in record(name)["replica_info"]}


def wait_for(condition: Any, timeout: float = 90, what: str = "", poll: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what or condition}: last {last!r}")


def ready_count(name: str, version: int | None = None) -> int:
    return sum(s == "READY" and (version is None or v == version)
               for s, v in replicas(name).values())


def wait_ready(name: str, count: int, version: int | None = None, timeout: float = 180) -> None:
    # A wait, not a timing claim: two local clusters launching under a two-worker suite
    # on two cores took over 90 s once.
    try:
        wait_for(lambda: ready_count(name, version) >= count and record(name)["status"].value
                 == "READY", timeout, f"{count} READY replica(s) of {name}")
    except AssertionError as exc:  # say what the replicas are and why, for a CI log
        info = [(r["replica_id"], r["status"].value, r["failure_reason"])
                for r in record(name)["replica_info"]]
        raise AssertionError(f"{exc}; replicas: {info}") from None


def get(endpoint: str, path: str = "/", **kwargs: Any) -> httpx.Response:
    return httpx.get(endpoint + path, trust_env=False, timeout=30, **kwargs)


def websocket_echo(endpoint: str, text: str) -> str:
    """One message through a WebSocket at ``endpoint/ws`` (a wsproto client)."""
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

    url = urlparse(endpoint)
    ws = WSConnection(ConnectionType.CLIENT)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(ws.send(Request(host=url.netloc, target="/ws")))
        reply: str | None = None
        accepted = False
        while reply is None:
            data = sock.recv(65536)
            if not data:
                raise AssertionError("the load balancer closed the WebSocket")
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    accepted = True
                    sock.sendall(ws.send(TextMessage(data=text)))
                elif isinstance(event, TextMessage):
                    reply = event.data
                elif isinstance(event, CloseConnection):
                    raise AssertionError(f"closed: {event.code} (accepted={accepted})")
        sock.sendall(ws.send(CloseConnection(code=1000)))
        return reply


def make_tls(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate it signed for 127.0.0.1: (ca.pem, key.pem, cert.pem)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def build(subject: str, key: Any, issuer: str, signer: Any, ca: bool) -> Any:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                signer.public_key()), critical=False)
        )
        if ca:
            builder = builder.add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        else:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = build("skyhop test CA", ca_key, "skyhop test CA", ca_key, True)
    cert = build("127.0.0.1", key, "skyhop test CA", ca_key, False)
    paths = directory / "ca.pem", directory / "key.pem", directory / "cert.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    paths[2].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return paths
