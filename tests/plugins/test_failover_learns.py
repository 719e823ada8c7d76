"""Failover against an out-of-tree backend whose zones run out of capacity, on a real server.

The server loads the example backend (``examples/skyhop-example-backend``) the way a
third-party plugin is loaded without installing it (``SKYHOP_PLUGINS``), with three
regions: ``r1`` (zones r1a, r1b) is the cheapest, then ``r2`` (r2a, r2b), then ``r3``
(r3a); each has a small and a medium instance type, and the medium one of r1 costs as
much as the small one of r2. The test makes places refuse through the backend's
``faults.json``, like a cloud running out, and counts the attempts a user sees in the
request's log ("Launching on …"): a quota error blocks its region and a capacity error
its zone for every remaining instance type, so the launch asks each place once.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jobcalls import controller_log, wait_status
from serverproc import ServerProcess, kill_processes_under

import skyhop as sky
from skyhop.client import ApiClient, using

pytestmark = pytest.mark.timeout(180)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "skyhop-example-backend"
REGIONS = {"r1": ["r1a", "r1b"], "r2": ["r2a", "r2b"], "r3": ["r3a"]}
ATTEMPT = re.compile(r"Launching on Example \((\w+)\): (example-\w+) x\d")


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("zonal")
    (root / "config.yaml").write_text(json.dumps({"backends": {"example": {"regions": REGIONS}}}))
    env = {
        "SKYHOP_PLUGINS": "skyhop_example_backend.plugin",
        "PYTHONPATH": str(EXAMPLE),
        "SKYHOP_JOBS_POLL_SECONDS": "0.2",
        "SKYHOP_JOBS_RETRY_BASE": "0.2",
        "SKYHOP_JOBS_RETRY_CAP": "0.5",
        "SKYHOP_JOBS_LAUNCH_RETRIES": "1",
        "SKYHOP_JOBS_FAILURE_GRACE_SECONDS": "3",
    }
    server = ServerProcess(root, env=env).start()
    with using(ApiClient(server.endpoint, auto_start=False)):
        yield server
    server.stop()
    kill_processes_under(root)


def refuse(server: ServerProcess, capacity: tuple[str, ...] = (), quota: tuple[str, ...] = ()) -> None:
    state = server.root / "backends" / "example"
    state.mkdir(parents=True, exist_ok=True)
    (state / "faults.json").write_text(json.dumps({"capacity": capacity, "quota": quota}))


def attempts(log: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in ATTEMPT.finditer(log)]


def request_log(server: ServerProcess, request_id: str) -> str:
    path = server.root / "requests" / f"{request_id}.log"
    return path.read_text() if path.exists() else ""


def down(name: str) -> None:
    if name in cluster_names():
        sky.get(sky.down(name))


def task(**extra: Any) -> dict[str, Any]:
    return {"run": "echo on $(hostname)", "resources": {"infra": "example", "cpus": "1+"}, **extra}


def cluster_names() -> list[str]:
    return [c["name"] for c in sky.get(sky.status())]


def test_quota_blocks_the_region_and_capacity_the_zone_for_every_instance_type(
    cloud: ServerProcess,
) -> None:
    refuse(cloud, capacity=("r2a", "r2b"), quota=("r1",))
    request_id = sky.launch(task(), cluster_name="fewest")
    try:
        _, handle = sky.get(request_id)
        assert handle.zone == "r3a"
        assert attempts(request_log(cloud, request_id)) == [
            ("r1a", "example-small"),  # quota: all of r1 is out, medium included
            ("r2a", "example-small"),  # capacity: this zone only
            ("r2b", "example-small"),
            ("r3a", "example-small"),
        ]
    finally:
        down("fewest")


def test_every_place_refusing_names_each_attempt_and_keeps_the_type(
    cloud: ServerProcess,
) -> None:
    refuse(cloud, quota=("r1", "r2", "r3"))
    with pytest.raises(sky.exceptions.QuotaError) as info:
        sky.get(sky.launch(task(), cluster_name="nowhere"))
    error = info.value
    assert [(a["zone"], a["instance_type"], a["error"]) for a in error.attempts] == [
        ("r1a", "example-small", "QuotaError"),
        ("r2a", "example-small", "QuotaError"),
        ("r3a", "example-small", "QuotaError"),
    ]
    lines = str(error).splitlines()
    assert lines[0] == (
        "Failed to provision cluster 'nowhere' after 3 attempts; every place it may run refused:"
    )
    assert lines[1] == (
        "  1. example/r1/r1a example-small: QuotaError: vCPU quota exhausted in region r1"
    )
    assert lines[3].startswith("  3. example/r3/r3a example-small: QuotaError")
    # Nothing was created, so nothing stays in status as INIT with the last candidate.
    assert "nowhere" not in cluster_names()
    assert not (cloud.root / "backends" / "example" / "clusters" / "nowhere").exists()

    refuse(cloud, capacity=("r1", "r2", "r3"))
    with pytest.raises(sky.exceptions.CapacityError):
        sky.get(sky.launch(task(), cluster_name="nowhere"))
    refuse(cloud, capacity=("r1", "r2"), quota=("r3",))
    with pytest.raises(sky.exceptions.ResourcesUnavailableError) as mixed:
        sky.get(sky.launch(task(), cluster_name="nowhere"))
    assert type(mixed.value) is sky.exceptions.ResourcesUnavailableError
    assert [a["error"] for a in mixed.value.attempts] == [
        "CapacityError", "CapacityError", "QuotaError",
    ]  # fmt: skip
    assert "nowhere" not in cluster_names()


def test_retry_until_up_asks_each_place_once_per_round(cloud: ServerProcess) -> None:
    refuse(cloud, capacity=("r1a", "r1b", "r2a", "r2b", "r3a"))
    request_id = sky.launch(task(), cluster_name="patient", retry_until_up=True)
    try:
        deadline = time.monotonic() + 30
        while "Retrying in" not in request_log(cloud, request_id):
            assert time.monotonic() < deadline, request_log(cloud, request_id)
            time.sleep(0.05)
        first_round = attempts(request_log(cloud, request_id))
        # Capacity frees up in r1b during the 5 s backoff.
        refuse(cloud, capacity=("r1a",))
        _, handle = sky.get(request_id)
        assert handle.zone == "r1b"
        every = attempts(request_log(cloud, request_id))
        assert first_round == [(z, "example-small") for z in ("r1a", "r1b", "r2a", "r2b", "r3a")]
        assert every[len(first_round):] == [("r1a", "example-small"), ("r1b", "example-small")]
    finally:
        down("patient")


def test_managed_job_relaunch_does_not_ask_again_where_it_was_refused(
    cloud: ServerProcess, tmp_path: Path
) -> None:
    marker = tmp_path / "ran-once"
    run = f"if [ -f {marker} ]; then exit 0; fi; touch {marker}; sleep 600"
    refuse(cloud, capacity=("r1a", "r1b"))
    job_id = int(sky.get(sky.jobs.launch(task(run=run, name="learner")))["job_id"])
    assert wait_status(job_id, "RUNNING")["infra"] == "example/r2"
    deadline = time.monotonic() + 30  # RUNNING comes before the command has started
    while not marker.exists():
        assert time.monotonic() < deadline, controller_log(job_id)
        time.sleep(0.05)
    launched = len(attempts(controller_log(job_id)))
    assert launched == 3  # r1a, r1b refused; r2a
    # r2 is where it ran; r1 is out of quota now and r3 out of capacity: the relaunch
    # tries elsewhere than r2 first (EAGER_NEXT_REGION), then anywhere, which is r2 again.
    refuse(cloud, capacity=("r3a",), quota=("r1",))
    where = cloud.root / "backends" / "example" / "clusters" / f"learner-{job_id}"
    # The machine dies the way a preempted one does: its processes first (the agent may
    # report the job FAILED_DRIVER), the node a second later. Within the controller's
    # grace period (3 s here) that is a preemption, not the job's failure.
    kill_processes_under(where)
    time.sleep(1)
    (where / "cluster.json").unlink()
    row = wait_status(job_id, "SUCCEEDED", timeout=90)
    log = controller_log(job_id)
    assert row["infra"] == "example/r2" and row["recovery_count"] == 1, log
    assert attempts(log)[launched:] == [
        ("r1a", "example-small"),  # quota: r1b and every medium of r1 are skipped
        ("r3a", "example-small"),  # capacity; the try "anywhere" asks neither again
        ("r2a", "example-small"),
    ], log
    refuse(cloud)


def test_the_cli_prints_one_line_per_attempt(cloud: ServerProcess) -> None:
    refuse(cloud, capacity=("r1a", "r1b"), quota=("r2", "r3"))
    done = subprocess.run(
        [sys.executable, "-m", "skyhop.cli", "launch", "-c", "cli-nowhere", "--infra",
         "example", "--cpus", "1+", "-y", "echo never"],
        env=cloud.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    refuse(cloud)
    assert done.returncode == 1, done
    tail = done.stderr.strip().splitlines()[-6:]
    assert tail == [
        "Error: ResourcesUnavailableError: Failed to provision cluster 'cli-nowhere' after 4 "
        "attempts; every place it may run refused:",
        "  1. example/r1/r1a example-small: CapacityError: no example-small capacity in zone r1a",
        "  2. example/r1/r1b example-small: CapacityError: no example-small capacity in zone r1b",
        "  3. example/r2/r2a example-small: QuotaError: vCPU quota exhausted in region r2",
        "  4. example/r3/r3a example-small: QuotaError: vCPU quota exhausted in region r3",
        "Try other regions or instance types, or launch with --retry-until-up.",
    ], done.stderr
    assert done.stdout.count("1. example/r1/r1a") + done.stderr.count("1. example/r1/r1a") == 1
