"""Starting the fake Compute API (``python -m fakegce``) as a subprocess, and talking to it.

:class:`FakeGceProcess` waits for the server's ``port`` file, exposes its base URL and the
service-account key file it wrote, sends test controls (``/_fake/...``), and stops the
server by PID (SIGTERM: it removes its host namespaces and bridge; SIGKILL after 10 s).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).parent


class FakeGceProcess:
    def __init__(
        self, root: Path, *, project: str = "skyhop-test", slots: int = 4, step: float = 0.15
    ) -> None:
        self.root, self.project = root, project
        root.mkdir(parents=True, exist_ok=True)
        (root / "config.json").write_text(
            json.dumps({"root": str(root), "project": project, "slots": slots, "step": step})
        )
        self.log = open(root / "fakegce.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fakegce", str(root / "config.json")],
            cwd=HERE, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(HERE)},
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not (root / "port").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"fakegce did not start:\n{self.log_text()}")
            time.sleep(0.05)
        self.base = f"http://127.0.0.1:{(root / 'port').read_text()}"
        self.credentials = root / "credentials.json"
        self.compute_endpoint = self.base + "/compute/v1/"
        self.storage_endpoint = self.base + "/"  # the root: storage/v1/, upload/storage/v1/

    def log_text(self) -> str:
        return (self.root / "fakegce.log").read_text(errors="replace")[-5000:]

    def control(self, what: str, body: dict[str, Any] | None = None) -> Any:
        """POST (with ``body``) or GET a test control; returns its JSON."""
        url = f"{self.base}/_fake/{what}"
        response = (httpx.post(url, json=body, timeout=30) if body is not None
                    else httpx.get(url, timeout=30))  # fmt: skip
        response.raise_for_status()
        return response.json()

    def instances(self) -> list[dict[str, Any]]:
        return list(self.control("instances")["instances"])

    def close(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
