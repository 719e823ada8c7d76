"""The one-round-trip read: ``POST /api/v1/<op>?wait=S`` against a real server.

A short request that finishes within the wait comes back with its result (200, the body
``GET /api/get`` has); one that does not, and any long request, comes back as before
(202 and its ID). Either way it is a request with an ID and a row: listed by
``/api/status``, readable with ``/api/get``, kept across a SIGKILL once answered.
Clients that never send ``wait`` see the old protocol.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

HEADERS = {"X-Skyhop-User": "alice", "X-Skyhop-User-Hash": "a11ce000"}
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
STATUS = {"cluster_names": None, "refresh": "NONE", "all_users": False}


def post(server, op, body=None, wait=None):
    params = {} if wait is None else {"wait": wait}
    return httpx.post(f"{server.endpoint}/api/v1/{op}", json=body or {}, params=params,
                      headers=HEADERS, timeout=30)


def listed(server):
    r = httpx.get(f"{server.endpoint}/api/status", params={"all": "true"}, headers=HEADERS)
    return {x["request_id"]: x for x in r.json()}


def get(server, request_id):
    r = httpx.get(f"{server.endpoint}/api/get", params={"request_id": request_id},
                  headers=HEADERS, timeout=30)
    return r.json()


def test_a_read_with_wait_answers_with_its_result_and_is_still_a_request(server):
    r = post(server, "status", STATUS, wait="5")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "SUCCEEDED" and body["result"] == [] and body["error"] is None
    assert body.pop("log_bytes") == 0  # it logged nothing: no need to stream its log
    request_id = body["request_id"]
    record = listed(server)[request_id]
    assert record["name"] == "status" and record["status"] == "SUCCEEDED"
    assert record["user_name"] == "alice"
    assert get(server, request_id) == body


def test_without_wait_the_old_protocol_is_unchanged(server):
    r = post(server, "status", STATUS)
    assert r.status_code == 202 and list(r.json()) == ["request_id"]
    assert get(server, r.json()["request_id"])["status"] == "SUCCEEDED"


def test_errors_of_a_waited_read_come_back_typed_in_the_same_call(server):
    r = post(server, "queue", {"cluster_name": "nope"}, wait="5")
    assert r.status_code == 200
    assert r.json()["status"] == "FAILED"
    assert r.json()["error"]["type"] == "ClusterDoesNotExist"


@pytest.mark.parametrize("value", ["-1", "61", "soon", "nan", ""])
def test_a_bad_wait_is_refused_naming_it(server, value):
    r = post(server, "status", STATUS, wait=value)
    assert r.status_code == 400
    assert "wait=" in r.json()["error"]["message"]
    assert not listed(server), "a refused submission created a request"


def test_long_requests_answer_at_once_even_with_wait(server):
    started = time.monotonic()
    r = post(server, "down", {"cluster_name": "nope"}, wait="30")
    assert r.status_code == 202
    assert time.monotonic() - started < 10
    assert get(server, r.json()["request_id"])["error"]["type"] == "ClusterDoesNotExist"


@pytest.fixture
def slow_check(make_server, tmp_path):
    def make(delay: float = 1.5):
        env = {"SKYHOP_PLUGINS": "slow_backend", "PYTHONPATH": str(FIXTURES),
               "SLOW_BACKEND_CHECK_DELAY": str(delay)}
        return make_server(tmp_path / "slow", env=env)

    return make


def test_a_short_request_that_outlasts_the_wait_is_stored_and_answered_by_id(slow_check):
    server = slow_check()
    r = post(server, "check", {}, wait="0.2")
    assert r.status_code == 202
    request_id = r.json()["request_id"]
    # Acknowledged, so stored: listed while it runs, and it finishes as usual.
    assert listed(server)[request_id]["status"] == "RUNNING"
    assert get(server, request_id)["status"] == "SUCCEEDED"
    assert listed(server)[request_id]["status"] == "SUCCEEDED"


def test_an_answered_read_survives_a_sigkill(make_server, tmp_path):
    server = make_server(tmp_path / "state")
    answered = [post(server, "status", STATUS, wait="5").json() for _ in range(20)]
    for body in answered:
        del body["log_bytes"]
    server.kill(signal.SIGKILL)
    again = make_server(tmp_path / "state")
    rows = listed(again)
    for body in answered:
        assert rows[body["request_id"]]["status"] == "SUCCEEDED"
        assert get(again, body["request_id"]) == body


def test_a_running_request_waited_on_is_cancelled_at_once(slow_check):
    server = slow_check(delay=30)  # a check that would run for 30 s
    r = post(server, "check", {}, wait="0.1")
    request_id = r.json()["request_id"]
    started = time.monotonic()
    c = httpx.post(f"{server.endpoint}/api/cancel", json={"request_ids": [request_id]},
                   headers=HEADERS)
    assert c.json()["cancelled"] == [request_id]
    assert time.monotonic() - started < 5  # not after the check: it is cancelled
    assert get(server, request_id)["status"] == "CANCELLED"


def test_an_sdk_read_is_one_http_call_and_async_too(server):
    import trio

    import skyhop as sky
    from skyhop import aio
    from skyhop.aio.client import AsyncApiClient
    from skyhop.client import ApiClient, using

    seen: list[str] = []
    client = ApiClient(server.endpoint)
    client.ensure_server()
    client._http.event_hooks["request"].append(lambda r: seen.append(r.url.path))
    with using(client):
        assert sky.get(sky.status()) == []
        assert seen == ["/api/v1/status"]
        request_id = sky.status()
        assert sky.get(request_id) == [] and sky.get(request_id) == []  # again: asks
        assert seen[1:] == ["/api/v1/status", "/api/get"]
        assert request_id in [r.request_id for r in sky.api_status(all_status=True)]
    client.close()

    async def read_async() -> list[str]:
        calls: list[str] = []

        async def hook(r: httpx.Request) -> None:
            calls.append(r.url.path)

        async with AsyncApiClient(server.endpoint) as aclient:
            await aclient.ensure_server()
            aclient._http.event_hooks["request"].append(hook)
            with aio.using(aclient):
                assert await aio.status() == []  # submit, (empty) log and result: one call
        return calls

    assert trio.run(read_async) == ["/api/v1/status"]


def test_the_sdk_without_waiting_uses_two_calls(server, monkeypatch):
    import skyhop as sky
    from skyhop.client import ApiClient, using

    monkeypatch.setenv("SKYHOP_SUBMIT_WAIT_SECONDS", "0")
    seen: list[str] = []
    client = ApiClient(server.endpoint)
    client.ensure_server()
    client._http.event_hooks["request"].append(lambda r: seen.append(r.url.path))
    with using(client):
        assert sky.get(sky.status()) == []
    client.close()
    assert seen == ["/api/v1/status", "/api/get"]


def test_the_submit_route_takes_one_operation_name_and_only_post(server):
    """``POST /api/v1/<op>`` and ``GET /api/health`` skip the router (server/app.py's
    FastRoutes); around them, the router's answers are unchanged."""
    assert post(server, "status", STATUS, wait=5).json()["status"] == "SUCCEEDED"
    nested = post(server, "status/extra", STATUS)
    assert nested.status_code == 404
    assert post(server, "", STATUS).status_code == 404
    wrong = httpx.get(f"{server.endpoint}/api/v1/status", headers=HEADERS)
    assert wrong.status_code == 405 and "POST" in wrong.headers["allow"]
    unknown = post(server, "no_such_op", {}).json()
    assert "no_such_op" in unknown["error"]["message"]
    health = httpx.get(f"{server.endpoint}/api/health", headers=HEADERS).json()
    assert health["status"] == "healthy" and health["user"]["name"] == "alice"
    head = httpx.head(f"{server.endpoint}/api/health", headers=HEADERS)
    assert head.status_code == 200
