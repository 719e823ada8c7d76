"""Recovery strategies, launch failures and a restart mid-launch, against a real server.

The ``regional`` test backend (tests/fixtures/regional_backend.py) has a cheap region
r1 and a dearer r2 whose capacity the test switches off; its clusters are real local
clusters, so a preemption is real: processes killed, node directories removed.
"""

from __future__ import annotations

import shutil
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jobcalls import Capture, controller_log, record, wait_status
from serverproc import ServerProcess, kill_processes_under, processes_under

import skyhop as sky
from skyhop.client import ApiClient, using

pytestmark = pytest.mark.timeout(180)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
FAST = {
    "SKYHOP_JOBS_POLL_SECONDS": "0.2",
    # Jobs here signal the test through marker files on the host, which a sandboxed
    # node cannot write (tests/plugins/local tests the sandbox itself).
    "SKYHOP_LOCAL_SANDBOX": "off",
    "SKYHOP_JOBS_RETRY_BASE": "0.2",
    "SKYHOP_JOBS_RETRY_CAP": "0.5",
    "SKYHOP_JOBS_LAUNCH_RETRIES": "2",
    "SKYHOP_SERVER_LEASE_SECONDS": "3",
}


@pytest.fixture(scope="module")
def regional(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("regional")
    env = {
        **FAST,
        "SKYHOP_PLUGINS": "regional_backend",
        "PYTHONPATH": str(FIXTURES),
        "REGIONAL_FULL": str(root / "full-regions"),
        "REGIONAL_DISABLED": str(root / "regional-disabled"),
        "REGIONAL_CALLS": str(root / "regional-calls"),
    }
    server = ServerProcess(root, env=env).start()
    with using(ApiClient(server.endpoint, auto_start=False)):
        yield server
    server.stop()
    kill_processes_under(root)


def full(server: ServerProcess, *regions: str) -> None:
    (server.root / "full-regions").write_text("".join(f"{r}\n" for r in regions))


def launch(name: str, run: str, **resources: Any) -> int:
    task = {"name": name, "run": run, "resources": {"infra": "regional", **resources}}
    return int(sky.get(sky.jobs.launch(task))["job_id"])


def kill_until_none_left(where: Path) -> None:
    """SIGKILL whatever runs under ``where`` until two scans in a row find nothing."""
    empty = 0
    for _ in range(200):
        pids = processes_under(where)
        empty = 0 if pids else empty + 1
        if empty >= 2:
            return
        kill_processes_under(where)
        time.sleep(0.01)
    raise AssertionError(f"processes under {where} kept coming back: {processes_under(where)}")


def preempt(server: ServerProcess, job_id: int, name: str) -> None:
    where = server.root / "backends" / "regional" / "clusters" / f"{name}-{job_id}"
    assert where.is_dir()
    # Every process of the node is killed before its directory goes: one forked while a
    # sweep ran would outlive the node (a preempted machine leaves no survivors) and,
    # sharing the relaunched node's paths and job IDs, write the old attempt's status over
    # the new one's. Swept again until the controller says it noticed, never after: it
    # relaunches into the same directory.
    # Its words: "is not UP (preempted?)", "is not UP after the job ended FAILED_DRIVER
    # (preempted?)" (the agent died with the node), "did not answer", "no longer knows job".
    noticed = ("(preempted?)", "did not answer", "no longer knows job")
    for _ in range(20):
        kill_until_none_left(where)
        shutil.rmtree(where, ignore_errors=True)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            if any(line in controller_log(job_id) for line in noticed):
                return
            time.sleep(0.1)
    raise AssertionError(f"the controller never noticed the preemption:\n{controller_log(job_id)}")


def two_attempts(tmp_path: Path) -> str:
    """A run that sleeps the first time and succeeds the second (see first_attempt)."""
    marker = tmp_path / "ran-once"
    return f"if [ -f {marker} ]; then exit 0; fi; touch {marker}; sleep 600"


def first_attempt(job_id: int, tmp_path: Path) -> dict[str, Any]:
    """The row once the first attempt of a two_attempts job runs its command: RUNNING
    comes before the shell has left its marker, and a preemption in between would make
    the second attempt the first one (and sleep the test out)."""
    row = wait_status(job_id, "RUNNING")
    deadline = time.monotonic() + 30
    while not (tmp_path / "ran-once").exists():
        assert time.monotonic() < deadline, f"job {job_id} never ran its command"
        time.sleep(0.05)
    return row


def test_eager_next_region_recovers_elsewhere_than_the_preempted_region(
    regional: ServerProcess, tmp_path: Path
) -> None:
    full(regional)
    job_id = launch("eager", two_attempts(tmp_path))
    assert first_attempt(job_id, tmp_path)["infra"] == "regional/r1"  # the cheaper region
    preempt(regional, job_id, "eager")
    row = wait_status(job_id, "SUCCEEDED", timeout=90)
    assert row["infra"] == "regional/r2"
    assert row["recovery_count"] == 1
    assert "trying another region than regional/r1 first" in controller_log(job_id)


def test_failover_recovers_in_the_same_region_first(
    regional: ServerProcess, tmp_path: Path
) -> None:
    full(regional)
    job_id = launch("failover", two_attempts(tmp_path), job_recovery="FAILOVER")
    assert first_attempt(job_id, tmp_path)["infra"] == "regional/r1"
    preempt(regional, job_id, "failover")
    row = wait_status(job_id, "SUCCEEDED", timeout=90)
    assert (row["infra"], row["recovery_count"]) == ("regional/r1", 1)


def test_a_node_whose_agent_forgot_the_job_is_recovered(
    regional: ServerProcess, tmp_path: Path
) -> None:
    """A node wiped and made again (its directory back, its agent's job database empty)
    answers the controller but does not know the job: that is a lost job, recovered."""
    full(regional)
    job_id = launch("forgot", two_attempts(tmp_path), job_recovery="FAILOVER")
    assert first_attempt(job_id, tmp_path)["infra"] == "regional/r1"
    where = regional.root / "backends" / "regional" / "clusters" / f"forgot-{job_id}"
    databases = list(where.rglob("agent.db"))
    assert databases, "the node has no agent database"
    kill_until_none_left(where)
    for db in databases:
        for path in db.parent.glob("agent.db*"):
            path.unlink()
    row = wait_status(job_id, "SUCCEEDED", timeout=90)
    assert row["recovery_count"] == 1
    assert "no longer knows job" in controller_log(job_id) or "did not answer" in controller_log(
        job_id
    )


def test_eager_next_region_keeps_a_region_the_user_pinned(
    regional: ServerProcess, tmp_path: Path
) -> None:
    full(regional)
    job_id = launch("pinned", two_attempts(tmp_path), infra="regional/r2")
    assert first_attempt(job_id, tmp_path)["infra"] == "regional/r2"
    preempt(regional, job_id, "pinned")
    row = wait_status(job_id, "SUCCEEDED", timeout=90)
    assert (row["infra"], row["recovery_count"]) == ("regional/r2", 1)


def test_recovery_goes_anywhere_when_the_preferred_place_is_full(
    regional: ServerProcess, tmp_path: Path
) -> None:
    full(regional)
    job_id = launch("crowded", two_attempts(tmp_path), job_recovery="FAILOVER")
    assert first_attempt(job_id, tmp_path)["infra"] == "regional/r1"
    full(regional, "r1")
    preempt(regional, job_id, "crowded")
    row = wait_status(job_id, "SUCCEEDED", timeout=90)
    assert (row["infra"], row["recovery_count"]) == ("regional/r2", 1)
    full(regional)


def test_no_capacity_anywhere_is_failed_no_resource(regional: ServerProcess) -> None:
    full(regional, "r1", "r2")
    try:
        job_id = launch("nowhere", "echo never")
        row = wait_status(job_id, "FAILED_NO_RESOURCE", "SUCCEEDED", timeout=60)
    finally:
        full(regional)
    assert row["status"] is sky.ManagedJobStatus.FAILED_NO_RESOURCE
    assert "region r1 is full" in row["failure_reason"]
    assert "retrying in" in controller_log(job_id)
    assert not any(c["name"] == f"nowhere-{job_id}" for c in sky.get(sky.status()))
    assert sky.jobs.tail_logs(job_id=job_id, output_stream=Capture()) == 100  # type: ignore[arg-type]


def test_what_can_never_launch_is_failed_prechecks(regional: ServerProcess) -> None:
    job_id = launch("huge", "echo never", infra="local", cpus="100000+")
    row = wait_status(job_id, "FAILED_PRECHECKS", "SUCCEEDED", timeout=30)
    assert row["status"] is sky.ManagedJobStatus.FAILED_PRECHECKS
    assert row["failure_reason"]
    assert "Launching cluster" not in controller_log(job_id)


def regional_calls(server: ServerProcess) -> Counter[str]:
    path = server.root / "regional-calls"
    return Counter(path.read_text().split() if path.exists() else [])


def test_a_launch_plans_once_and_reuses_cached_checks(regional: ServerProcess) -> None:
    full(regional)
    before = regional_calls(regional)
    jobs = [launch("once-a", "echo a"), launch("once-b", "echo b")]
    for job_id in jobs:
        assert wait_status(job_id, "SUCCEEDED", "FAILED", "FAILED_PRECHECKS",
                           timeout=60)["status"] is sky.ManagedJobStatus.SUCCEEDED
    calls = regional_calls(regional) - before
    # One plan per launch (the precheck's; provisioning takes it): one offers call each.
    assert calls["offers"] == 2
    # Both launches' checks (precheck and provisioning) came from one real check at most.
    assert calls["check"] <= 1


def test_skyhop_check_refreshes_cached_checks(regional: ServerProcess) -> None:
    disabled = regional.root / "regional-disabled"
    disabled.touch()
    try:
        # A cached "enabled" would let this launch go ahead; `skyhop check` replaces it.
        results = {r.backend: r for r in sky.get(sky.check())}
        assert not results["regional"].enabled
        job_id = launch("refused", "echo never")
        row = wait_status(job_id, "FAILED_PRECHECKS", "SUCCEEDED", timeout=30)
        assert row["status"] is sky.ManagedJobStatus.FAILED_PRECHECKS
        assert "not enabled" in row["failure_reason"]
    finally:
        disabled.unlink()
    # The cached "not enabled" is checked again before anything is refused for it: the
    # fixed backend is used at once, not after the cache's TTL.
    before = regional_calls(regional)["check"]
    job_id = launch("fixed", "echo fixed")
    row = wait_status(job_id, "SUCCEEDED", "FAILED_PRECHECKS", "FAILED", timeout=60)
    assert row["status"] is sky.ManagedJobStatus.SUCCEEDED
    assert regional_calls(regional)["check"] > before


def test_bad_input_is_refused_at_submission(regional: ServerProcess) -> None:
    with pytest.raises(sky.exceptions.TaskValidationError, match="priority"):
        sky.get(sky.jobs.launch({"run": "true", "resources": {"priority": 5000}}))
    with pytest.raises(sky.exceptions.InvalidClusterNameError):
        sky.get(sky.jobs.launch({"run": "true"}, name="bad name"))
    with pytest.raises(ValueError, match="exactly one"):
        sky.jobs.cancel()


def test_sigkill_mid_launch_terminates_the_half_made_cluster_and_relaunches(
    make_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    root = tmp_path / "midlaunch"
    env = {**FAST, "SKYHOP_PLUGINS": "slow_backend", "PYTHONPATH": str(FIXTURES),
           "SLOW_BACKEND_DELAY": "2"}
    server = make_server(root, env=env)
    with using(ApiClient(server.endpoint, auto_start=False)):
        task = {"name": "midway", "run": "echo made-it", "resources": {"infra": "slow"}}
        job_id = int(sky.get(sky.jobs.launch(task))["job_id"])
        deadline = time.monotonic() + 30
        while "waiting 2s for the nodes" not in controller_log(job_id):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert record(job_id)["status"] is sky.ManagedJobStatus.STARTING
    server.kill(signal.SIGKILL)
    restarted = make_server(root, port=server.port, env=env)
    with using(ApiClient(restarted.endpoint, auto_start=False)):
        row = wait_status(job_id, "SUCCEEDED", "FAILED", "FAILED_CONTROLLER", timeout=60)
        assert row["status"] is sky.ManagedJobStatus.SUCCEEDED, row
        log = controller_log(job_id)
        assert "terminating whatever the interrupted launch left behind" in log
        out = Capture()
        assert sky.jobs.tail_logs(job_id=job_id, output_stream=out) == 0  # type: ignore[arg-type]
        assert out.text.count("made-it") == 1
        assert not sky.get(sky.status())
    slow_root = root / "backends" / "slow"
    assert not slow_root.exists() or not any(slow_root.iterdir()), "a cluster leaked"


def test_sigkill_while_cancelling_cleans_up_after_the_restart(
    make_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    root = tmp_path / "cancelling"
    env = {**FAST, "SKYHOP_PLUGINS": "slow_backend", "PYTHONPATH": str(FIXTURES),
           "SLOW_BACKEND_DELAY": "0", "SLOW_BACKEND_DOWN_DELAY": "3"}
    server = make_server(root, env=env)
    with using(ApiClient(server.endpoint, auto_start=False)):
        task = {"name": "doomed", "run": "sleep 600", "resources": {"infra": "slow"}}
        job_id = int(sky.get(sky.jobs.launch(task))["job_id"])
        wait_status(job_id, "RUNNING")
        sky.jobs.cancel(job_ids=[job_id])  # not awaited: the server dies mid-cleanup
        deadline = time.monotonic() + 30
        while "slow: down waits" not in controller_log(job_id):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert record(job_id)["status"] is sky.ManagedJobStatus.CANCELLING
    server.kill(signal.SIGKILL)
    restarted = make_server(root, port=server.port, env=env)
    with using(ApiClient(restarted.endpoint, auto_start=False)):
        wait_status(job_id, "CANCELLED", timeout=60)
        assert not sky.get(sky.status())
        assert sky.jobs.tail_logs(job_id=job_id, output_stream=Capture()) == 103  # type: ignore[arg-type]
    cluster = root / "backends" / "slow" / f"doomed-{job_id}"
    assert not cluster.exists(), "the cancelled job's cluster leaked"


def test_a_source_bucket_deleted_before_recovery_fails_prechecks_naming_it(
    regional: ServerProcess, tmp_path: Path
) -> None:
    """The bucket a job mounts was there at submission and is gone when the job recovers:
    the job can never run again, which is FAILED_PRECHECKS saying which mount and bucket
    (as SkyPilot's storage errors at launch), not FAILED_CONTROLLER (a skyhop fault), and
    the relaunched cluster is taken down."""
    full(regional)
    bucket = regional.root / "stores" / "local" / "sh-gone"
    bucket.mkdir(parents=True)
    (bucket / "f.txt").write_text("seed")
    task = {"name": "gone", "run": two_attempts(tmp_path),
            "resources": {"infra": "regional"},
            "file_mounts": {"~/data": {"source": "local://sh-gone", "mode": "COPY"}}}  # fmt: skip
    job_id = int(sky.get(sky.jobs.launch(task))["job_id"])
    first_attempt(job_id, tmp_path)
    shutil.rmtree(bucket)
    preempt(regional, job_id, "gone")
    row = wait_status(job_id, "FAILED_PRECHECKS", "FAILED_CONTROLLER", "SUCCEEDED", timeout=90)
    assert row["status"] is sky.ManagedJobStatus.FAILED_PRECHECKS, row
    reason = row["failure_reason"]
    assert "file_mounts['~/data']" in reason and "sh-gone" in reason, reason
    assert "Relaunching" in controller_log(job_id)  # it failed recovering, not before
    assert sky.get(sky.status([f"gone-{job_id}"], all_users=True)) == []
