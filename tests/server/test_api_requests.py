"""The request API over HTTP against a real server: submit, get, stream, status, cancel."""

from __future__ import annotations

import signal

import httpx

from skyhop_core import API_VERSION, __version__

HEADERS = {"X-Skyhop-User": "alice", "X-Skyhop-User-Hash": "a11ce000"}


def submit(server, op, body=None, headers=HEADERS):
    r = httpx.post(f"{server.endpoint}/api/v1/{op}", json=body or {}, headers=headers)
    return r


def get(server, request_id):
    return httpx.get(f"{server.endpoint}/api/get", params={"request_id": request_id}, timeout=60)


def test_health_reports_versions(server):
    body = httpx.get(f"{server.endpoint}/api/health").json()
    assert body["version"] == __version__
    assert body["api_version"] == API_VERSION
    assert body["persistent_path"] == str(server.root)


def test_status_request_round_trip_and_listing(server):
    r = submit(server, "status", {})
    assert r.status_code == 202
    request_id = r.json()["request_id"]
    done = get(server, request_id[:8]).json()
    assert done["status"] == "SUCCEEDED"
    assert done["result"] == []
    listed = httpx.get(f"{server.endpoint}/api/status", params={"all": "true"}, headers=HEADERS)
    assert request_id in [x["request_id"] for x in listed.json()]
    # Another user does not see it unless all_users.
    other = {"X-Skyhop-User": "bob", "X-Skyhop-User-Hash": "b0b00000"}
    mine = httpx.get(f"{server.endpoint}/api/status", params={"all": "true"}, headers=other)
    assert request_id not in [x["request_id"] for x in mine.json()]
    every = httpx.get(
        f"{server.endpoint}/api/status", params={"all": "true", "all_users": "true"}, headers=other
    )
    assert request_id in [x["request_id"] for x in every.json()]


def test_bad_operation_and_parameters_are_rejected_with_a_clear_error(server):
    r = submit(server, "no_such_op", {})
    assert r.status_code == 400
    assert "Unknown operation" in r.json()["error"]["message"]
    r = submit(server, "stop", {"cluster_name": 3, "bogus": True})
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "ValueError"
    r = submit(server, "stop", {"cluster_name": "x", "purge": False, "nope": 1})
    assert r.status_code == 400
    assert "nope" in r.json()["error"]["message"]
    r = submit(server, "launch", {"task": {"run": "echo hi"}, "cluster_name": "bad name!"})
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "InvalidClusterNameError"


def test_unknown_and_ambiguous_request_ids(server):
    assert get(server, "zzzz").status_code == 404
    ids = {submit(server, "status").json()["request_id"] for _ in range(20)}
    # With 20 random UUIDs, some first hex digit repeats: that prefix is ambiguous.
    firsts = [i[0] for i in ids]
    dup = next(c for c in firsts if firsts.count(c) > 1)
    r = get(server, dup)
    assert r.status_code == 409
    err = r.json()["error"]
    assert err["type"] == "AmbiguousRequestIdError"
    assert all(m.startswith(dup) for m in err["args"]["matches"])


def test_operation_errors_come_back_typed(server):
    request_id = submit(server, "queue", {"cluster_name": "missing"}).json()["request_id"]
    done = get(server, request_id).json()
    assert done["status"] == "FAILED"
    assert done["error"]["type"] == "ClusterDoesNotExist"
    assert "missing" in done["error"]["message"]


def test_cancelling_a_finished_request_changes_nothing(server):
    request_id = submit(server, "status").json()["request_id"]
    get(server, request_id)
    r = httpx.post(f"{server.endpoint}/api/cancel", json={"request_ids": [request_id]}, headers=HEADERS)
    assert r.json() == {"cancelled": [], "finished": [request_id]}
    assert get(server, request_id).json()["status"] == "SUCCEEDED"


def test_requests_survive_a_sigkill_restart(make_server, tmp_path):
    server = make_server(tmp_path / "state")
    request_id = submit(server, "status").json()["request_id"]
    get(server, request_id)
    server.kill(signal.SIGKILL)
    again = make_server(tmp_path / "state")
    listed = httpx.get(f"{again.endpoint}/api/status", params={"all": "true"}, headers=HEADERS)
    assert request_id in [x["request_id"] for x in listed.json()]
    assert get(again, request_id).json()["status"] == "SUCCEEDED"
