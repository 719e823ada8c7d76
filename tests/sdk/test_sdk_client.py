"""ApiClient: endpoint resolution, identity, version checks, error decoding, local server."""

from __future__ import annotations

import getpass
import hashlib
import socket
import time

import httpx
import pytest

from skyhop import localserver
from skyhop.client import ApiClient, RequestInterrupted, is_loopback, resolve_endpoint
from skyhop_core import exceptions


def test_endpoint_from_env_then_config_then_default(tmp_path, monkeypatch):
    config = tmp_path / "config.yaml"
    config.write_text("api_server:\n  endpoint: http://10.1.2.3:8000/\n")
    monkeypatch.setenv("SKYHOP_CONFIG", str(config))
    monkeypatch.setenv("SKYHOP_API_SERVER_ENDPOINT", "http://example.com:9/")
    assert resolve_endpoint() == "http://example.com:9"
    monkeypatch.delenv("SKYHOP_API_SERVER_ENDPOINT")
    assert resolve_endpoint() == "http://10.1.2.3:8000"
    monkeypatch.setenv("SKYHOP_CONFIG", str(tmp_path / "missing.yaml"))
    assert resolve_endpoint() == "http://127.0.0.1:46590"


@pytest.mark.parametrize(
    ("endpoint", "loopback"),
    [
        ("http://127.0.0.1:46590", True),
        ("http://localhost:1", True),
        ("http://[::1]:46590", True),
        ("http://127.8.0.1", True),
        ("http://10.0.0.1:46590", False),
        ("https://skyhop.example.com", False),
    ],
)
def test_is_loopback(endpoint, loopback):
    assert is_loopback(endpoint) is loopback


def test_every_call_carries_the_identity_headers(fake, client):
    client.submit("check", {})
    expected_hash = hashlib.sha256(
        f"{getpass.getuser()}@{socket.gethostname()}".encode()
    ).hexdigest()[:8]
    assert len(fake.calls) == 2  # health once, then the call
    for call in fake.calls:
        assert call.headers["X-Skyhop-User"] == getpass.getuser()
        assert call.headers["X-Skyhop-User-Hash"] == expected_hash


def test_health_is_checked_once_per_client(fake, client):
    client.submit("check", {})
    client.submit("check", {})
    assert fake.paths().count("/api/health") == 1


def test_major_version_mismatch_names_both_versions_and_the_fix(fake):
    fake.api_version = "2.0"
    api = ApiClient("http://127.0.0.1:46590", transport=httpx.MockTransport(fake.handler))
    with pytest.raises(exceptions.ApiVersionMismatchError) as info:
        api.submit("check", {})
    message = str(info.value)
    assert "2.0" in message and "1.0" in message
    assert "skyhop api stop; skyhop api start" in message
    assert "pip install -U skyhop" in message
    assert fake.submitted == []


def test_minor_version_difference_is_accepted(fake):
    fake.api_version = "1.7"
    api = ApiClient("http://127.0.0.1:46590", transport=httpx.MockTransport(fake.handler))
    assert api.submit("check", {})


def test_submit_error_is_raised_with_its_type(fake, client):
    fake.submit_errors["launch"] = (
        400,
        {"type": "InvalidClusterNameError", "message": "Cluster name 'a b' is invalid", "args": {}},
    )
    with pytest.raises(exceptions.InvalidClusterNameError, match="is invalid"):
        client.submit("launch", {"task": {}})


def test_unknown_prefix_and_ambiguous_prefix(fake, client):
    with pytest.raises(exceptions.RequestNotFoundError):
        client.get("nothing")
    fake.requests["abc1"] = fake.requests["abc2"] = {}
    with pytest.raises(exceptions.AmbiguousRequestIdError) as info:
        client.get("abc")
    assert sorted(info.value.matches) == ["abc1", "abc2"]


def test_non_json_error_becomes_api_server_error(client):
    def broken(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/health":
            return httpx.Response(200, json={"api_version": "1.0"})
        return httpx.Response(502, text="<html>bad gateway</html>")

    api = ApiClient("http://127.0.0.1:46590", transport=httpx.MockTransport(broken))
    with pytest.raises(exceptions.ApiServerError, match="HTTP 502"):
        api.submit("check", {})


def test_unreachable_remote_server_names_the_endpoint():
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    api = ApiClient("http://10.9.8.7:46590", transport=httpx.MockTransport(refuse))
    with pytest.raises(exceptions.ApiServerError) as info:
        api.submit("status", {})
    message = str(info.value)
    assert "http://10.9.8.7:46590" in message
    assert "SKYHOP_API_SERVER_ENDPOINT" in message


def test_ctrl_c_while_streaming_names_the_request(fake, client):
    request_id = client.submit("launch", {"task": {}})
    fake.interrupt_on.add("/api/stream")
    with pytest.raises(RequestInterrupted) as info:
        list(client.stream(request_id))
    assert info.value.request_id == request_id
    assert info.value.endpoint == "http://127.0.0.1:46590"
    assert isinstance(info.value, KeyboardInterrupt)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_first_call_starts_a_local_server_and_api_stop_stops_it(tmp_path, monkeypatch):
    from skyhop import sdk
    from skyhop.client import using

    monkeypatch.setenv("SKYHOP_PERSISTENT_PATH", str(tmp_path))
    monkeypatch.setenv("SKYHOP_CONFIG", str(tmp_path / "config.yaml"))
    endpoint = f"http://127.0.0.1:{_free_port()}"
    api = ApiClient(endpoint)
    try:
        with using(api):
            info = sdk.api_info()
            assert info["endpoint"] == endpoint
            assert info["persistent_path"] == str(tmp_path)
            port = int(endpoint.rsplit(":", 1)[1])
            replica = tmp_path / "server" / f"{socket.gethostname()}-{port}"
            assert (replica / "server.log").exists()
            assert (replica / "server.pid").read_text().split()[0].isdigit()
            assert sdk.api_stop() is True
            assert sdk.api_stop() is False
            # The next call finds the server gone and starts a new one.
            assert sdk.get(sdk.status()) == []
            assert sdk.api_stop() is True
    finally:
        if api.is_up():  # never leave a server behind
            api.shutdown()
        api.close()


def test_a_server_that_cannot_start_points_at_its_log(tmp_path, monkeypatch):
    monkeypatch.setenv("SKYHOP_PERSISTENT_PATH", str(tmp_path))
    with socket.socket() as taken:  # the port is busy: the server cannot bind it
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        start = time.monotonic()
        with pytest.raises(exceptions.ApiServerError) as info:
            localserver.start_local_server(f"http://127.0.0.1:{port}", timeout=15)
    replica = tmp_path / "server" / f"{socket.gethostname()}-{port}"
    assert str(replica / "server.log") in str(info.value)
    assert time.monotonic() - start < 15
