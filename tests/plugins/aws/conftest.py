"""moto's EC2 server on loopback for the AWS backend tests.

The server runs once per session (``moto_server`` on 127.0.0.1, a free port); every test
gets a fresh account state (moto's reset endpoint) and the standard AWS environment
pointing at it (``AWS_ENDPOINT_URL``), so the backend's ordinary boto3 code talks to it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

boto3 = pytest.importorskip("boto3", reason="the aws extra (boto3) is not installed")
pytest.importorskip("moto.server", reason="moto[server] is not installed")

REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start moto's server on loopback; kill it (by PID) at the end of the session."""
    import httpx

    port = _free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"moto_server exited with {proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(endpoint + "/moto-api/", timeout=1).status_code < 500:
                    break
            if time.monotonic() > deadline:
                pytest.fail("moto_server did not start in 30 s")
            time.sleep(0.1)
        yield endpoint
    finally:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.fixture
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Fresh moto state and the AWS environment of a test account pointing at it."""
    import httpx

    httpx.post(moto_endpoint + "/moto-api/reset", timeout=10).raise_for_status()
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    return moto_endpoint


@pytest.fixture
def ec2_client(aws_env: str) -> Any:
    """A plain boto3 EC2 client on moto, to look behind the backend's back."""
    from skyhop_aws.aws import default_client_factory

    return default_client_factory("ec2", REGION)


@pytest.fixture
def failing_factory(aws_env: str) -> Callable[[str, set[str]], Any]:
    """``failing_factory(code, zones)``: a client factory for :class:`AwsPlugin`."""
    return _failing_factory


def _failing_factory(code: str, zones: set[str]) -> Any:
    """A client factory whose RunInstances fails with ``code`` in ``zones`` (moto cannot
    run out of capacity or quota, so the error is injected on the client)."""
    from botocore.exceptions import ClientError

    from skyhop_aws.aws import default_client_factory

    def factory(service: str, region: str) -> Any:
        client = default_client_factory(service, region)

        def refuse(params: dict[str, Any], **_: Any) -> None:
            zone = params.get("Placement", {}).get("AvailabilityZone")
            if zone in zones:
                error = {"Code": code, "Message": f"We currently do not have {zone} capacity."}
                raise ClientError({"Error": error}, "RunInstances")

        client.meta.events.register("before-parameter-build.ec2.RunInstances", refuse)
        return client

    return factory


@pytest.fixture(scope="session")
def ec2_hosts() -> Iterator[Any]:
    """Two sshd hosts in network namespaces that stand in for moto's instances (see
    ``aws_on_fake_hosts``); skipped, like the ssh tests, where namespaces cannot be made."""
    from aws_on_fake_hosts import load_ssh_netns

    with load_ssh_netns().fake_hosts_or_skip(2, "AWS tests that run commands") as hosts:
        yield hosts
