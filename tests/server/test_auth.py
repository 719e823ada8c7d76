"""A deployed (team) API server on loopback: bearer tokens, identity, roles, ownership.

alice and bob are ``user`` tokens, root an ``admin`` one. A user sees only their own
requests and clusters; someone else's are "not found", answered exactly like an object
that does not exist.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import skyhop as sky
from skyhop import exceptions, sdk
from skyhop.client import ApiClient, using
from skyhop_core.state import open_store
from skyhop_core.state import tokens as tk


class Team:
    """A deployed server plus tokens for alice and bob."""

    def __init__(self, root: Path, server_class: Any) -> None:
        # The administrator lets token users run local clusters, as an unprivileged user.
        (root / "config.yaml").write_text(
            "backends:\n  local:\n    allow_on_deployed_server: true\n    run_as: nobody\n"
        )
        self.server = server_class(root, args=("--deploy",)).start()
        self.endpoint = self.server.endpoint
        store = open_store(root)
        self.store = store
        self.alice, _ = store.run_sync(tk.create, "alice")
        self.bob, _ = store.run_sync(tk.create, "bob")
        self.root, _ = store.run_sync(tk.create, "root", "admin")

    def headers(self, token: str | None, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", **extra} if token else dict(extra)

    @contextlib.contextmanager
    def as_user(self, token: str) -> Iterator[ApiClient]:
        client = ApiClient(self.endpoint, token=token, auto_start=False)
        with using(client):
            yield client
        client.close()


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config) -> Iterator[Team]:
    from skyhop_local import sandbox

    support = sandbox.detect()
    if not support.sandboxed:
        pytest.skip(f"local clusters on a deployed server need sandboxes: {support.reason}")
    root = tmp_path_factory.mktemp("team")
    import serverproc as helpers

    team = Team(root, helpers.ServerProcess)
    yield team
    try:
        team.server.stop()
    finally:
        team.server.kill()
        helpers.kill_processes_under(root)


@pytest.fixture(scope="module")
def alice_cluster(team: Team) -> str:
    """A local cluster that alice launched (``echo hi``)."""
    task = sky.Task(run="echo hi", resources=sky.Resources(infra="local"))
    with team.as_user(team.alice):
        result = sky.stream_and_get(
            sky.launch(task, cluster_name="adev"), output_stream=io.StringIO()
        )
    assert result["job_id"] == 1
    return "adev"


def submit(
    team: Team, op: str, body: dict[str, Any], token: str | None, **headers: str
) -> httpx.Response:
    return httpx.post(
        f"{team.endpoint}/api/v1/{op}",
        json=body,
        headers=team.headers(token, **headers),
        timeout=30,
    )


def test_health_is_open_and_names_a_token_holder(team: Team) -> None:
    anonymous = httpx.get(f"{team.endpoint}/api/health").json()
    assert anonymous["auth_required"] is True
    assert anonymous["user"] is None
    # Without a token: up, and which version; nothing about the machine.
    assert set(anonymous) == {"status", "version", "api_version", "auth_required", "user"}
    text = httpx.get(f"{team.endpoint}/api/health").text
    assert str(team.server.root) not in text and str(team.server.proc.pid) not in text  # type: ignore[union-attr]
    named = httpx.get(f"{team.endpoint}/api/health", headers=team.headers(team.alice)).json()
    assert named["user"] == {"name": "alice", "hash": named["user"]["hash"], "role": "user"}
    assert named["pid"] == team.server.proc.pid  # type: ignore[union-attr]
    admin = httpx.get(f"{team.endpoint}/api/health", headers=team.headers(team.root)).json()
    assert admin["user"]["role"] == "admin"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/status"),
        ("GET", "/api/status"),
        ("POST", "/api/cancel"),
        ("GET", "/api/get?request_id=x"),
        ("GET", "/api/stream?request_id=x"),
        ("POST", "/api/shutdown"),
    ],
)
@pytest.mark.parametrize("token", [None, "skyhop_000000000000.nope", "garbage"])
def test_no_or_bad_token_is_401_with_a_login_hint(
    team: Team, method: str, path: str, token: str | None
) -> None:
    r = httpx.request(method, team.endpoint + path, json={}, headers=team.headers(token))
    assert r.status_code == 401
    error = r.json()["error"]
    assert error["type"] == "NotAuthenticatedError"
    assert f"skyhop api login -e {team.endpoint} --token" in error["message"]


def test_identity_headers_are_ignored(team: Team) -> None:
    fake = {"X-Skyhop-User": "alice", "X-Skyhop-User-Hash": "a11ce000"}
    assert submit(team, "status", {}, None, **fake).status_code == 401
    request_id = submit(team, "status", {}, team.bob, **fake).json()["request_id"]
    mine = httpx.get(
        f"{team.endpoint}/api/status",
        params={"request_ids": request_id},
        headers=team.headers(team.bob),
    ).json()
    assert [(r["user_name"], r["user_hash"]) for r in mine][0][0] == "bob"
    assert mine[0]["user_hash"] != "a11ce000"


@pytest.mark.parametrize(
    ("op", "body"),
    [
        ("exec", {"task": {"run": "echo bob"}, "cluster_name": "adev"}),
        ("stop", {"cluster_name": "adev"}),
        ("start", {"cluster_name": "adev"}),
        ("down", {"cluster_name": "adev"}),
        ("autostop", {"cluster_name": "adev", "idle_minutes": 5}),
        ("queue", {"cluster_name": "adev"}),
        ("job_status", {"cluster_name": "adev"}),
        ("cancel", {"cluster_name": "adev", "all": True}),
        ("cancel", {"cluster_name": "adev", "job_ids": [1]}),
        ("logs", {"cluster_name": "adev", "job_id": 1, "follow": False}),
        ("download_logs", {"cluster_name": "adev"}),
    ],
)
def test_bob_is_told_alices_cluster_does_not_exist(
    team: Team, alice_cluster: str, op: str, body: dict[str, Any]
) -> None:
    def error_for(cluster: str) -> str:
        with team.as_user(team.bob), pytest.raises(exceptions.ClusterDoesNotExist) as info:
            sky.get(submit(team, op, {**body, "cluster_name": cluster}, team.bob).json()["request_id"])
        return str(info.value)

    message = error_for("adev")
    assert "alice" not in message
    # Word for word what a cluster that does not exist gets.
    assert message == error_for("nosuch").replace("nosuch", "adev")


def test_bob_cannot_launch_onto_alices_cluster_name(team: Team, alice_cluster: str) -> None:
    with (
        team.as_user(team.bob),
        pytest.raises(exceptions.ClusterOwnerIdentityMismatchError, match="is taken") as info,
    ):
        sky.get(submit(team, "launch", {"task": {"run": "echo bob"}, "cluster_name": "adev"},
                       team.bob).json()["request_id"])  # fmt: skip
    assert "alice" not in str(info.value)


@pytest.mark.parametrize(
    ("op", "body"),
    [
        ("status", {"all_users": True}),
        ("queue", {"cluster_name": "adev", "all_users": True}),
        ("cancel", {"cluster_name": "adev", "all": True, "all_users": True}),
    ],
)
def test_all_users_is_for_admins(
    team: Team, alice_cluster: str, op: str, body: dict[str, Any]
) -> None:
    with (
        team.as_user(team.bob),
        pytest.raises(exceptions.PermissionDeniedError, match="Only an administrator"),
    ):
        sky.get(submit(team, op, body, team.bob).json()["request_id"])


def test_status_lists_others_clusters_only_for_an_admin(team: Team, alice_cluster: str) -> None:
    with team.as_user(team.bob):
        assert sky.get(sky.status()) == []
        assert sky.get(sky.status(cluster_names=["adev"])) == []
    with team.as_user(team.root):
        assert sky.get(sky.status()) == []
        everyone = sky.get(sky.status(all_users=True))
    assert [(r["name"], r["user_name"]) for r in everyone] == [("adev", "alice")]
    with team.as_user(team.alice):
        assert [r["name"] for r in sky.get(sky.status())] == ["adev"]


def test_an_admin_acts_on_everyones_clusters(team: Team, alice_cluster: str) -> None:
    with team.as_user(team.root):
        queue = sky.get(sky.queue("adev", all_users=True))
        assert 1 in [j["job_id"] for j in queue]
        logs_id = sdk.submit_logs("adev", 1, follow=False)
        out = io.StringIO()
        assert sky.stream_and_get(logs_id, output_stream=out) == 0
    assert "hi" in out.getvalue()


def test_alice_still_owns_her_cluster(team: Team, alice_cluster: str) -> None:
    with team.as_user(team.alice):
        result = sky.get(sky.exec(sky.Task(run="echo again"), cluster_name="adev"))
        assert result["job_id"] >= 2
        jobs = sky.get(sky.queue("adev"))
    assert {j["username"] for j in jobs} == {"alice"}


def _running_request(team: Team) -> tuple[str, int]:
    """A request of alice's that keeps running (following a job that sleeps)."""
    with team.as_user(team.alice):
        job = sky.get(sky.exec(sky.Task(run="sleep 300"), cluster_name="adev"))["job_id"]
        request_id = sdk.submit_logs("adev", job, follow=True)
        assert request_id in [r.request_id for r in sky.api_status()]
    return request_id, job


def test_api_status_and_cancel_respect_request_owners(team: Team, alice_cluster: str) -> None:
    request_id, job = _running_request(team)
    with team.as_user(team.bob):
        assert request_id not in [r.request_id for r in sky.api_status(all_status=True)]
        with pytest.raises(exceptions.PermissionDeniedError, match="Only an administrator"):
            sky.api_status(all_status=True, all_users=True)
        with pytest.raises(exceptions.RequestNotFoundError):
            sky.get(sky.api_cancel(request_id))
        with pytest.raises(exceptions.PermissionDeniedError):
            sky.get(sky.api_cancel(request_id, all_users=True))
        with pytest.raises(exceptions.PermissionDeniedError):
            sky.get(sky.api_cancel(all_users=True))
        assert request_id not in sky.get(sky.api_cancel(all=True))
    with team.as_user(team.alice):
        assert request_id in [r.request_id for r in sky.api_status()]
        assert sky.get(sky.api_cancel(request_id[:12])) == [request_id]
        assert sky.get(sky.cancel("adev", job_ids=[job])) == [job]


def _error(r: httpx.Response, request_id: str) -> tuple[int, dict[str, Any]]:
    """Status and error body, with the ID asked for replaced by a placeholder."""
    body = r.json()
    body["error"]["message"] = body["error"]["message"].replace(request_id, "<ID>")
    return r.status_code, body


@pytest.mark.parametrize("length", [36, 8])
def test_others_requests_are_not_found_by_id_or_prefix(
    team: Team, alice_cluster: str, length: int
) -> None:
    """get, stream, status and cancel of alice's request (full ID, or a prefix unique to
    it) answer bob exactly as an ID that does not exist."""
    request_id, job = _running_request(team)
    asked = request_id[:length]
    missing = "ffffffff-ffff-4fff-8fff-ffffffffffff"[:length]
    bob = team.headers(team.bob)

    def calls(rid: str) -> list[httpx.Response]:
        e = team.endpoint
        return [
            httpx.get(f"{e}/api/get", params={"request_id": rid}, headers=bob, timeout=10),
            httpx.get(f"{e}/api/stream", params={"request_id": rid}, headers=bob, timeout=10),
            httpx.get(f"{e}/api/status", params={"request_ids": rid}, headers=bob, timeout=10),
            httpx.post(f"{e}/api/cancel", json={"request_ids": [rid]}, headers=bob, timeout=10),
        ]

    for theirs, nothing in zip(calls(asked), calls(missing), strict=True):
        assert theirs.status_code == 404, theirs.text
        assert _error(theirs, asked) == _error(nothing, missing)
        assert "alice" not in theirs.text
    with team.as_user(team.alice):
        assert [r.request_id for r in sky.api_status([asked])] == [request_id]  # still running
    # The admin sees it and cancels it.
    with team.as_user(team.root):
        assert [r.user_name for r in sky.api_status([asked])] == ["alice"]
        assert request_id in [r.request_id for r in sky.api_status(all_users=True)]
        assert sky.get(sky.api_cancel(asked)) == [request_id]
        assert sky.get(sky.cancel("adev", job_ids=[job])) == [job]
    with team.as_user(team.alice):
        assert sky.api_status([request_id])[0].status.value == "CANCELLED"


def test_an_admin_cancels_everyones_requests(team: Team, alice_cluster: str) -> None:
    request_id, job = _running_request(team)
    with team.as_user(team.root):
        assert request_id not in sky.get(sky.api_cancel(all=True))  # -a: the admin's own
        assert request_id in sky.get(sky.api_cancel(all_users=True))
        assert sky.get(sky.cancel("adev", job_ids=[job], all_users=True)) == [job]


def test_a_deployed_server_refuses_shutdown(team: Team) -> None:
    r = httpx.post(f"{team.endpoint}/api/shutdown", headers=team.headers(team.alice))
    assert r.status_code == 403
    assert r.json()["error"]["type"] == "PermissionDeniedError"
    assert httpx.get(f"{team.endpoint}/api/health").status_code == 200


def test_revoked_token_is_refused_and_rotation_keeps_the_identity(team: Team) -> None:
    carol, record = team.store.run_sync(tk.create, "carol")
    assert submit(team, "status", {}, carol).status_code == 202
    with pytest.raises(ValueError, match="already has an active token"):
        team.store.run_sync(tk.create, "carol")
    assert team.store.run_sync(tk.revoke, "carol") == 1
    r = submit(team, "status", {}, carol)
    assert r.status_code == 401
    assert "invalid or revoked" in r.json()["error"]["message"]
    again, rotated = team.store.run_sync(tk.create, "carol")
    assert rotated.user_hash == record.user_hash
    assert submit(team, "status", {}, again).status_code == 202


def test_only_hashes_are_stored(team: Team) -> None:
    import sqlalchemy as sa

    from skyhop_core.state.db import api_tokens

    with team.store.engine.connect() as conn:
        rows = conn.execute(sa.select(api_tokens)).all()
    stored = " ".join(str(v) for row in rows for v in row)
    assert team.alice not in stored and team.alice.split(".", 1)[1] not in stored
    assert tk.hash_token(team.alice) in stored


def test_a_deployed_server_keeps_the_local_backend_off_by_default(
    make_server: Any, tmp_path: Path
) -> None:
    server = make_server(args=("--deploy",))
    store = open_store(server.root)
    token, _ = store.run_sync(tk.create, "dave")
    client = ApiClient(server.endpoint, token=token, auto_start=False)
    task = sky.Task(run="echo hi", resources=sky.Resources(infra="local"))
    with using(client), pytest.raises(exceptions.ResourcesUnavailableError) as caught:
        sky.get(sky.launch(task, cluster_name="nope"))
    client.close()
    message = str(caught.value)
    assert "off on a deployed server" in message and "allow_on_deployed_server" in message
    assert not (server.root / "backends" / "local" / "clusters" / "nope").exists()


def test_a_local_server_trusts_headers_but_guards_other_users_requests(make_server: Any) -> None:
    server = make_server()
    alice = {"X-Skyhop-User": "alice", "X-Skyhop-User-Hash": "a11ce000"}
    bob = {"X-Skyhop-User": "bob", "X-Skyhop-User-Hash": "b0b00000"}
    health = httpx.get(f"{server.endpoint}/api/health", headers=alice).json()
    assert health["auth_required"] is False
    assert health["user"] == {"name": "alice", "hash": "a11ce000", "role": "user"}
    request_id = httpx.post(f"{server.endpoint}/api/v1/status", json={}, headers=alice).json()[
        "request_id"
    ]
    r = httpx.post(f"{server.endpoint}/api/cancel", json={"request_ids": [request_id]}, headers=bob)
    assert r.status_code == 403
    assert "--all-users" in r.json()["error"]["message"]
    r = httpx.post(
        f"{server.endpoint}/api/cancel",
        json={"request_ids": [request_id], "all_users": True},
        headers=bob,
    )
    assert r.status_code == 200
