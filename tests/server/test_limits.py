"""Hostile input over real HTTP: bodies too large or too deep, coerced types, bad names.

Every case is refused at submission with a 4xx naming what was wrong, and leaves no
request behind.
"""

from __future__ import annotations

import time

import httpx
import pytest
from serverproc import ServerProcess, kill_processes_under

HEADERS = {"X-Skyhop-User": "mallory", "X-Skyhop-User-Hash": "ma11047a"}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory):
    server = ServerProcess(tmp_path_factory.mktemp("limits") / "state").start()
    yield server
    server.stop()
    kill_processes_under(server.root)


def post(srv: ServerProcess, path: str, **kwargs):
    headers = {**HEADERS, "Content-Type": "application/json", **kwargs.pop("headers", {})}
    return httpx.post(f"{srv.endpoint}{path}", headers=headers, timeout=60, **kwargs)


def request_ids(srv: ServerProcess) -> list[str]:
    r = httpx.get(
        f"{srv.endpoint}/api/status", params={"all": "true", "all_users": "true"}, headers=HEADERS
    )
    return [x["request_id"] for x in r.json()]


def wait(srv: ServerProcess, request_id: str) -> dict:
    r = httpx.get(f"{srv.endpoint}/api/get", params={"request_id": request_id}, timeout=120)
    return dict(r.json())


def error(r: httpx.Response) -> str:
    return str(r.json()["error"]["message"])


@pytest.mark.parametrize("path", ["/api/v1/launch", "/api/cancel"])
def test_a_body_over_16_mib_is_413_and_creates_nothing(srv, path):
    before = request_ids(srv)
    body = b'{"task": {"run": "' + b"x" * (17 * 1024 * 1024) + b'"}}'
    r = post(srv, path, content=body)
    assert r.status_code == 413
    assert "SKYHOP_MAX_BODY_BYTES" in error(r)
    assert request_ids(srv) == before


def test_a_streamed_body_without_length_is_cut_at_the_limit(srv):
    def chunks():
        yield b'{"task": {"run": "'
        for _ in range(17):
            yield b"y" * (1024 * 1024)
        yield b'"}}'

    r = post(srv, "/api/v1/launch", content=chunks())
    assert r.status_code == 413


@pytest.mark.parametrize("opening,closing", [(b"[", b"]"), (b'{"a":', b"}")])
def test_deeply_nested_json_is_400_quickly(srv, opening, closing):
    for levels in (100_000, 200):  # beyond the parser's recursion, and merely deep
        body = b'{"task": ' + opening * levels + b"1" + closing * levels + b"}"
        started = time.monotonic()
        r = post(srv, "/api/v1/launch", content=body)
        assert r.status_code == 400, r.text
        assert "64 levels" in error(r)
        assert time.monotonic() - started < 5
    r = post(srv, "/api/cancel", content=b"[" * 100_000 + b"]" * 100_000)
    assert r.status_code == 400


def test_request_ids_as_a_string_is_400_and_cancels_nothing(srv):
    # Following the log of a job that sleeps: a request that stays RUNNING.
    task = {"run": "sleep 600", "resources": {"infra": "local"}}
    r = post(srv, "/api/v1/launch", json={"task": task, "cluster_name": "sleeper"})
    assert wait(srv, r.json()["request_id"])["status"] == "SUCCEEDED"
    r = post(srv, "/api/v1/logs", json={"cluster_name": "sleeper", "follow": True})
    victim = r.json()["request_id"]
    # A one-letter string used to be iterated into the prefix list ["<letter>"].
    r = post(srv, "/api/cancel", json={"request_ids": victim[:1]})
    assert r.status_code == 400
    assert "request_ids: expected an array, got a string" in error(r)
    r = post(srv, "/api/cancel", json={"request_ids": [victim], "all": 1})
    assert r.status_code == 400
    assert "all: expected a boolean" in error(r)
    status = httpx.get(
        f"{srv.endpoint}/api/status", params={"request_ids": victim}, headers=HEADERS
    ).json()
    assert status[0]["status"] == "RUNNING"
    r = post(srv, "/api/cancel", json={"request_ids": [victim]})
    assert r.json()["cancelled"] == [victim]
    assert wait(srv, post(srv, "/api/v1/down", json={"cluster_name": "sleeper"}).json()[
        "request_id"])["status"] == "SUCCEEDED"


@pytest.mark.parametrize(
    "op,body,field",
    [
        ("status", {"cluster_names": "abc"}, "cluster_names: expected an array"),
        ("status", {"cluster_names": ["ok", "bad name!"]}, "cluster_names: Cluster name"),
        ("stop", {"cluster_name": 3}, "cluster_name: expected a string, got an integer 3"),
        ("stop", {"cluster_name": "x", "purge": 0}, "purge: expected a boolean"),
        ("queue", {"cluster_name": "bad\x1b[31mname"}, "cluster_name: Cluster name"),
        ("down", {"cluster_name": "trailing-newline\n"}, "cluster_name: Cluster name"),
        ("logs", {"cluster_name": "c", "tail": -1}, "tail: -1 is out of range"),
        ("logs", {"cluster_name": "c", "job_id": "1"}, "job_id: expected an integer"),
        ("job_status", {"cluster_name": "c", "job_ids": [1, True]}, "job_ids[1]: expected"),
        ("autostop", {"cluster_name": "c", "idle_minutes": 2**63}, "idle_minutes: "),
        ("launch", {"task": {}, "cluster_name": "-x"}, "cluster_name: Cluster name"),
        ("launch", {"task": "run: x"}, "task: expected an object"),
        ("launch", {"task": {}, "optimize_target": "FAST"}, "expected one of COST, TIME"),
        ("optimize", {"task": {"num_nodes": 0}}, "num_nodes"),
        ("cancel", {"cluster_name": "c"}, "Name the job IDs to cancel"),
        ("start", {"cluster_name": "c", "down": True}, "idle_minutes_to_autostop"),
    ],
)
def test_bad_parameters_are_400_naming_the_field_before_a_request_exists(srv, op, body, field):
    before = request_ids(srv)
    r = post(srv, f"/api/v1/{op}", json=body)
    assert r.status_code == 400, r.text
    assert field in error(r)
    assert request_ids(srv) == before


def test_a_bad_cluster_name_keeps_its_error_type(srv):
    r = post(srv, "/api/v1/stop", json={"cluster_name": "bad name!"})
    assert r.json()["error"]["type"] == "InvalidClusterNameError"


def local_clusters(srv: ServerProcess) -> list[str]:
    root = srv.root / "backends" / "local" / "clusters"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


@pytest.mark.parametrize("resources", [{"infra": "local"}, {}])
def test_num_nodes_beyond_the_backend_maximum_fails_before_anything_exists(srv, resources):
    before = local_clusters(srv)
    task = {"run": "true", "num_nodes": 100_000, "resources": resources}
    r = post(srv, "/api/v1/launch", json={"task": task, "cluster_name": "huge"})
    started = time.monotonic()
    done = wait(srv, r.json()["request_id"])
    assert time.monotonic() - started < 10
    assert done["status"] == "FAILED"
    assert done["error"]["type"] == "TooManyNodesError"
    message = done["error"]["message"]
    assert "num_nodes: 100000" in message and "Local (local) allows 16" in message
    assert "max_nodes" in message
    assert local_clusters(srv) == before
    status = wait(srv, post(srv, "/api/v1/status", json={}).json()["request_id"])
    assert "huge" not in [c["name"] for c in status["result"]]


def test_the_local_maximum_is_configurable(make_server, tmp_path):
    root = tmp_path / "configured"
    root.mkdir()
    (root / "config.yaml").write_text("backends:\n  local:\n    max_nodes: 2\n")
    server = make_server(root)
    task = {"run": "true", "num_nodes": 3, "resources": {"infra": "local"}}
    r = post(server, "/api/v1/launch", json={"task": task, "dryrun": True})
    done = wait(server, r.json()["request_id"])
    assert done["error"]["type"] == "TooManyNodesError"
    assert "allows 2" in done["error"]["message"]
    task["num_nodes"] = 2
    r = post(server, "/api/v1/launch", json={"task": task, "dryrun": True})
    assert wait(server, r.json()["request_id"])["status"] == "SUCCEEDED"


def job_log(srv: ServerProcess, cluster: str, job_id: int) -> tuple[bytes, dict]:
    """A job's whole log through a ``logs`` request and its stream, and the request."""
    r = post(srv, "/api/v1/logs", json={"cluster_name": cluster, "job_id": job_id})
    request_id = r.json()["request_id"]
    with httpx.stream(
        "GET", f"{srv.endpoint}/api/stream", params={"request_id": request_id},
        headers=HEADERS, timeout=120,
    ) as response:
        data = b"".join(response.iter_bytes()).replace(b"\0", b"")  # NUL: heartbeats
    return data, wait(srv, request_id)


def disk_usage(path) -> int:
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def cluster(srv):
    r = post(srv, "/api/v1/launch", json={"task": {"resources": {"infra": "local"}},
                                          "cluster_name": "work"})
    assert wait(srv, r.json()["request_id"])["status"] == "SUCCEEDED"
    yield "work"
    wait(srv, post(srv, "/api/v1/down", json={"cluster_name": "work"}).json()["request_id"])


def exec_job(srv, cluster: str, run: str) -> int:
    r = post(srv, "/api/v1/exec", json={"task": {"run": run}, "cluster_name": cluster})
    assert r.status_code == 202, r.text
    done = wait(srv, r.json()["request_id"])
    assert done["status"] == "SUCCEEDED", done
    return int(done["result"]["job_id"])


def test_a_three_megabyte_run_command_runs_and_prints(srv, cluster):
    filler = "".join(f": {'z' * 90} {i}\n" for i in range(32_000))
    run = "echo first-line\n" + filler + "echo last-line\n"
    assert len(run.encode()) > 3_000_000
    job_id = exec_job(srv, cluster, run)
    output, request = job_log(srv, cluster, job_id)
    assert request["result"] == 0, output[-2000:]
    assert output == b"first-line\nlast-line\n" + b"\xe2\x9c\x93 Job finished (status: SUCCEEDED).\n"


def test_reading_a_50_mb_job_log_twice_stores_no_copy_and_delivers_every_byte(srv, cluster):
    job_id = exec_job(srv, cluster, "seq -f '%09.0f' 1 5000000")  # 50,000,000 bytes
    expected = b"".join(b"%09d\n" % i for i in range(1, 5_000_001)) + b"\xe2\x9c\x93 Job finished (status: SUCCEEDED).\n"
    requests_dir = srv.root / "requests"
    before = disk_usage(requests_dir)
    for _ in range(2):
        output, request = job_log(srv, cluster, job_id)
        assert request["status"] == "SUCCEEDED" and request["result"] == 0
        assert len(output) == len(expected) and output == expected
    assert disk_usage(requests_dir) - before < 4 * 1024 * 1024  # 2 x (KEEP + WINDOW) at most


def test_a_queued_request_an_older_laxer_server_accepted_fails_on_restart(make_server, tmp_path):
    """A PENDING row whose body the strict server refuses (written before the upgrade)
    FAILS with the reason when the server resumes it; the server keeps serving."""
    from skyhop_core.state import open_store
    from skyhop_core.state import requests as rq

    root = tmp_path / "upgraded"
    root.mkdir()
    store = open_store(root)
    store.run_sync(lambda conn: rq.insert(
        conn, request_id="0ld-1ax-request", name="status", user_name="mallory",
        user_hash=HEADERS["X-Skyhop-User-Hash"], cluster_name=None, schedule_type="short",
        body={"cluster_names": "abc"},
    ))  # fmt: skip
    server = make_server(root)
    done = wait(server, "0ld-1ax-request")
    assert done["status"] == "FAILED"
    assert "cluster_names: expected an array" in done["error"]["message"]
    assert post(server, "/api/v1/status", json={}).status_code == 202
