"""The dashboard on a deployed (team) server, in a real browser: the bearer token via a
login form, kept in a session cookie; each user sees only what the API shows them.

alice and bob hold ``user`` tokens, root an ``admin`` one; alice has a cluster and a
managed job. bob cannot see or stream anything of hers; root can.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from serverproc import ServerProcess, kill_processes_under

import skyhop as sky
from skyhop.client import ApiClient, using
from skyhop_core.state import open_store
from skyhop_core.state import tokens as tk

pytestmark = pytest.mark.timeout(240)


class Team:
    """The deployed server, booting in a thread (``boot``; ``ready`` waits for it)."""

    def __init__(self, root: Path) -> None:
        (root / "config.yaml").write_text(
            "backends:\n  local:\n    allow_on_deployed_server: true\n    run_as: nobody\n"
        )
        self.root_path = root
        self.server = ServerProcess(root, args=("--deploy",))
        self.endpoint = self.server.endpoint
        self.alice = self.bob = self.root = ""
        self.launch_request = ""
        #: alice's managed job (its output: "managed hi from alice").
        self.managed_job_id = 0
        self._problem: BaseException | None = None
        self._thread = threading.Thread(target=self._boot, name="dash-team-boot", daemon=True)

    def boot(self) -> Team:
        self._thread.start()
        return self

    def _boot(self) -> None:
        try:
            self.server.start()
            store = open_store(self.root_path)
            self.alice, _ = store.run_sync(tk.create, "alice")
            self.bob, _ = store.run_sync(tk.create, "bob")
            self.root, _ = store.run_sync(tk.create, "root", "admin")
            client = ApiClient(self.endpoint, token=self.alice, auto_start=False)
            with using(client):
                # Both at once: the managed job launches its own cluster meanwhile.
                task = sky.Task(run="echo hi from alice", resources=sky.Resources(infra="local"))
                self.launch_request = sky.launch(task, cluster_name="adev")
                managed = sky.jobs.launch(sky.Task(
                    name="alice-mj", run="echo managed hi from alice",
                    resources=sky.Resources(infra="local")))
                sky.stream_and_get(self.launch_request, output_stream=io.StringIO())
                self.managed_job_id, _ = sky.get(managed)
            client.close()
        except BaseException as exc:  # re-raised in the test thread by ready()
            self._problem = exc

    def ready(self) -> Team:
        self._thread.join()
        if self._problem is not None:
            raise RuntimeError("the team server did not boot") from self._problem
        return self


@pytest.fixture(scope="module")
def booting_team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    from skyhop_local import sandbox

    support = sandbox.detect()
    if not support.sandboxed:
        pytest.skip(f"local clusters on a deployed server need sandboxes: {support.reason}")
    root = tmp_path_factory.mktemp("dashteam")
    team = Team(root).boot()
    try:
        yield team
    finally:
        try:
            team.ready()
        finally:
            try:
                team.server.stop()
            finally:
                team.server.kill()
                kill_processes_under(root)


@pytest.fixture
def team(booting_team: Team) -> Team:
    """The team's server, up (function-scoped: it boots while the module's chromium
    starts, module fixtures being set up first)."""
    return booting_team.ready()


def login(page: Any, team: Team, token: str, path: str = "/clusters") -> None:
    page.goto(f"{team.endpoint}/dashboard{path}")
    page.locator("input[name=token]").fill(token)
    page.get_by_role("button", name="Sign in").click()


def test_a_token_is_needed_and_kept_for_the_browser_session_only(
    team: Team, page: Any, shot: Callable[..., Path]
) -> None:
    from playwright.sync_api import expect

    page.goto(f"{team.endpoint}/dashboard/clusters")
    assert page.url.endswith("/dashboard/login?next=/dashboard/clusters")
    shot(page, "login")
    login(page, team, "skyhop_000000000000.nope")
    expect(page.locator("#login-error")).to_contain_text("not valid")
    page.locator("input[name=token]").fill(team.alice)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator('tr[data-cluster="adev"] .status')).to_have_text("UP")
    expect(page.locator("#whoami")).to_have_text("alice")
    (cookie,) = page.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/dashboard" and cookie["expires"] == -1  # a session cookie
    shot(page, "alice-clusters")
    # Signing out forgets it.
    page.get_by_role("button", name="Sign out").click()
    page.goto(f"{team.endpoint}/dashboard/requests")
    assert "/dashboard/login" in page.url


def test_bob_sees_nothing_of_alices(team: Team, page: Any, shot: Callable[..., Path]) -> None:
    from playwright.sync_api import expect

    login(page, team, team.bob)
    expect(page.locator("#whoami")).to_have_text("bob")
    expect(page.locator(".empty")).to_contain_text("No clusters")
    # Asking for everyone's is not his to ask: the toggle is not there, the URL is ignored.
    expect(page.locator(".toggle")).to_have_count(0)
    page.goto(f"{team.endpoint}/dashboard/clusters?all_users=true")
    expect(page.locator('tr[data-cluster="adev"]')).to_have_count(0)
    page.goto(f"{team.endpoint}/dashboard/clusters/adev")
    expect(page.locator(".flash.bad")).to_contain_text("Cluster 'adev' does not exist")
    page.goto(f"{team.endpoint}/dashboard/requests?all_users=true&user=alice")
    expect(page.locator(f'tr[data-request="{team.launch_request}"]')).to_have_count(0)
    page.goto(f"{team.endpoint}/dashboard/requests/{team.launch_request}")
    expect(page.locator(".flash.bad")).to_contain_text("No request with an ID starting with")
    page.goto(f"{team.endpoint}/dashboard/jobs?all_users=true")
    expect(page.locator(".empty")).to_contain_text("No managed jobs")
    shot(page, "bob-requests")
    # Nor can he stream alice's logs: her managed job's, its controller's, her cluster job's.
    job_id = team.managed_job_id
    page.goto(f"{team.endpoint}/dashboard/jobs/{job_id}")
    expect(page.locator("#job-status")).to_contain_text(f"No managed job {job_id} of yours")
    for path, refusal in ((f"/sse/managed/{job_id}", f"No managed job {job_id} of yours"),
                          (f"/sse/managed/{job_id}?controller=true", "No managed job"),
                          ("/sse/job/adev/1", "Cluster 'adev' does not exist")):
        body = page.request.get(f"{team.endpoint}/dashboard{path}").text()
        assert "event: end" in body and refusal in body, body
        assert "hi from alice" not in body


def test_an_admin_streams_another_users_managed_job_and_cluster_job_logs(
    team: Team, page: Any, shot: Callable[..., Path]
) -> None:
    from playwright.sync_api import expect

    login(page, team, team.root, "/jobs?all_users=true")
    job = page.locator(f'tr[data-job="{team.managed_job_id}"]')
    expect(job.locator("td").nth(2)).to_have_text("alice")
    job.get_by_role("link", name="logs").click()
    expect(page.locator("#log")).to_contain_text("managed hi from alice", timeout=90_000)
    expect(page.locator("#controller-log")).to_contain_text("alice-mj", timeout=30_000)
    shot(page, "admin-managed-log")
    page.goto(f"{team.endpoint}/dashboard/clusters?all_users=true")
    page.locator('tr[data-cluster="adev"]').get_by_role("link", name="adev").click()
    first = page.locator('tr[data-job="1"]')
    expect(first.locator("td").nth(2)).to_have_text("alice")
    first.get_by_role("link", name="log").click()
    expect(page.locator("#log")).to_contain_text("hi from alice")
    expect(page.locator("#job-row .status")).to_have_text("SUCCEEDED")
    expect(page.locator("#log-state")).to_contain_text("finished: SUCCEEDED")
    shot(page, "admin-cluster-job-log")


def test_bob_cannot_act_on_alices_cluster(team: Team, page: Any) -> None:
    login(page, team, team.bob)
    response = page.request.post(
        f"{team.endpoint}/dashboard/clusters/adev/down", headers={"HX-Request": "true"}
    )
    assert response.status == 200 and "does not exist" in response.text()
    alice = httpx.post(
        f"{team.endpoint}/api/v1/status", json={},
        headers={"Authorization": f"Bearer {team.alice}"},
    ).json()["request_id"]
    got = httpx.get(
        f"{team.endpoint}/api/get", params={"request_id": alice},
        headers={"Authorization": f"Bearer {team.alice}"}, timeout=30,
    ).json()
    assert [c["name"] for c in got["result"]] == ["adev"]


def test_an_admin_sees_every_users_clusters(team: Team, page: Any) -> None:
    from playwright.sync_api import expect

    login(page, team, team.root, "/clusters?all_users=true")
    expect(page.locator("#whoami")).to_have_text("root (admin)")
    cluster = page.locator('tr[data-cluster="adev"]')
    expect(cluster.locator("td").nth(1)).to_have_text("alice")


def test_the_session_cookie_opens_no_api_route(team: Team) -> None:
    cookie = {"Cookie": f"skyhop_dashboard_token={team.alice}"}
    assert httpx.get(f"{team.endpoint}/api/status", headers=cookie).status_code == 401
    # ... and without it a dashboard fragment asks htmx to go to the login page.
    r = httpx.get(f"{team.endpoint}/dashboard/clusters?fragment=table",
                  headers={"HX-Request": "true"})
    assert r.status_code == 401 and r.headers["HX-Redirect"].startswith("/dashboard/login")
