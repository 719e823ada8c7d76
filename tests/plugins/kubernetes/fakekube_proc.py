"""Starting fake Kubernetes clusters (``fakekube``) as subprocesses, and a kubeconfig for them.

Each cluster is ``python -m fakekube CONFIG`` on a free loopback port with its own bridge
and pod namespaces; :meth:`FakeClusters.close` stops every server by PID (SIGTERM, the
server removes its namespaces and bridge), then removes whatever a killed one left.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

HERE = Path(__file__).parent


class FakeCluster:
    """One running fake API server."""

    def __init__(self, name: str, root: Path, nodes: list[dict[str, Any]], subnet: int) -> None:
        self.name, self.root = name, root
        self.token = secrets.token_hex(16)
        self.tag = secrets.token_hex(2)
        root.mkdir(parents=True)
        # A real API server speaks TLS (and kubectl sends tokens only over TLS): a
        # self-signed certificate for 127.0.0.1, trusted through the kubeconfig.
        self.cert, self.key = root / "server.crt", root / "server.key"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-days", "2", "-subj", "/CN=fakekube", "-addext",
             "subjectAltName=IP:127.0.0.1", "-keyout", str(self.key), "-out", str(self.cert)],
            check=True, capture_output=True,
        )  # fmt: skip
        config = {"token": self.token, "root": str(root), "tag": self.tag,
                  "certfile": str(self.cert), "keyfile": str(self.key),
                  "subnet": subnet, "nodes": nodes,
                  "namespaces": ["default", "skyhop"]}  # fmt: skip
        (root / "config.json").write_text(json.dumps(config))
        self.log = open(root / "server.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fakekube", str(root / "config.json")],
            cwd=HERE, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(HERE)},
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while not (root / "port").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"fakekube {name} did not start: "
                                   f"{(root / 'server.log').read_text()[-2000:]}")  # fmt: skip
            time.sleep(0.05)
        self.url = f"https://127.0.0.1:{(root / 'port').read_text().strip()}"

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(
            method,
            self.url + path,
            timeout=10,
            verify=self.ssl_context(),
            headers={"Authorization": f"Bearer {self.token}"},
            **kwargs,
        )

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))

    def received(self) -> list[dict[str, Any]]:
        """Every manifest the server was sent, in order, exactly as sent."""
        return list(self.api("GET", "/_fake/received").json())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        # A server that died without cleaning up leaves namespaces and its bridge behind.
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            ns = line.split()[0] if line.split() else ""
            if ns.startswith(f"fk{self.tag}p"):
                for pid in subprocess.run(["ip", "netns", "pids", ns], capture_output=True,
                                          text=True).stdout.split():  # fmt: skip
                    with contextlib.suppress(OSError):
                        os.kill(int(pid), signal.SIGKILL)
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", f"fkbr{self.tag}"], capture_output=True)
        shutil.rmtree(self.root / "pods", ignore_errors=True)


def write_kubeconfig(path: Path, clusters: dict[str, FakeCluster],
                     namespace: str = "skyhop") -> Path:  # fmt: skip
    """A kubeconfig with one context per cluster (named like the cluster)."""
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": next(iter(clusters)),
        "clusters": [{"name": n, "cluster": {"server": c.url, "certificate-authority-data":
                      base64.b64encode(c.cert.read_bytes()).decode()}}
                     for n, c in clusters.items()],
        "users": [{"name": n, "user": {"token": c.token}} for n, c in clusters.items()],
        "contexts": [{"name": n, "context": {"cluster": n, "user": n, "namespace": namespace}}
                     for n in clusters],
    }  # fmt: skip
    path.write_text(yaml.safe_dump(config))
    return path
