"""Managed jobs end to end on the local backend, against a real API server.

A job runs on its own cluster and SUCCEEDS (or FAILS, exit 100), its cluster is gone
afterwards and its output replays; a preempted cluster (processes killed, nodes
removed behind the controller's back) is RECOVERED with the same SKYHOP_TASK_ID;
RUNNING and PENDING jobs are cancelled; the scheduler holds jobs PENDING beyond its
limit and starts the highest priority first; a SIGKILLed server resumes a RUNNING job
without a second cluster.
"""

from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jobcalls import Capture, record, wait_status
from serverproc import ServerProcess, kill_processes_under, processes_under

import skyhop as sky
from skyhop.client import ApiClient, using

pytestmark = pytest.mark.timeout(180)

#: Short intervals so the tests do not wait for production defaults.
FAST = {
    "SKYHOP_JOBS_POLL_SECONDS": "0.2",
    # Jobs here signal the test through marker files on the host, which a sandboxed
    # node cannot write (tests/plugins/local tests the sandbox itself).
    "SKYHOP_LOCAL_SANDBOX": "off",
    "SKYHOP_JOBS_RETRY_BASE": "0.2",
    "SKYHOP_SERVER_LEASE_SECONDS": "3",
}


@pytest.fixture(scope="module")
def jobs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("jobs")
    server = ServerProcess(root, env=FAST).start()
    yield server
    server.stop()
    kill_processes_under(root)


@pytest.fixture
def client(jobs_server: ServerProcess) -> Iterator[ServerProcess]:
    with using(ApiClient(jobs_server.endpoint, auto_start=False)):
        yield jobs_server


def skyhop(server: ServerProcess, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "skyhop.cli", *args],
        env=server.env, capture_output=True, text=True, timeout=timeout,
    )


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.1)


def cluster_dir(server: ServerProcess, name: str) -> Path:
    return server.root / "backends" / "local" / "clusters" / name


def clusters() -> list[str]:
    return [c["name"] for c in sky.get(sky.status())]


def scratch(name: str) -> dict[str, Any]:
    """A ``persistent: false`` local bucket at ~/scratch: it goes when the job ends."""
    return {"~/scratch": {"name": name, "persistent": False, "mode": "MOUNT"}}


def buckets() -> list[str]:
    return [b["name"] for b in sky.get(sky.storage_ls())]


def bucket_dir(server: ServerProcess, name: str) -> Path:
    return server.root / "stores" / "local" / name


def output(job_id: int) -> str:
    out = Capture()
    sky.jobs.tail_logs(job_id=job_id, follow=False, output_stream=out)  # type: ignore[arg-type]
    return out.text


def launch(run: str, name: str, mounts: dict[str, Any] | None = None, **resources: Any) -> int:
    task: dict[str, Any] = {"name": name, "run": run, "resources": {"infra": "local", **resources}}
    if mounts:
        task["file_mounts"] = mounts
    job_id, controller_handle = sky.get(sky.jobs.launch(task))  # SkyPilot's pair
    assert controller_handle is None  # the controller is in the API server
    return int(job_id)


def test_cli_job_succeeds_its_cluster_goes_and_its_output_replays(
    client: ServerProcess,
) -> None:
    proc = skyhop(
        client, "jobs", "launch", "-y", "-n", "hello", "--infra", "local",
        "--secret", "TOKEN=s3cr3t-value",
        'test "${TOKEN#s3cr3t}" = -value && echo hello-managed task=$SKYHOP_TASK_ID',
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "hello-managed" in proc.stdout
    (row,) = [r for r in sky.get(sky.jobs.queue(refresh=False)) if r["job_name"] == "hello"]
    job_id = row["job_id"]
    assert row["status"] is sky.ManagedJobStatus.SUCCEEDED
    assert row["cluster_name"] == f"hello-{job_id}"
    assert f"hello-{job_id}" not in clusters()
    assert not cluster_dir(client, f"hello-{job_id}").exists()

    logs = skyhop(client, "jobs", "logs", str(job_id))
    assert logs.returncode == 0
    assert "hello-managed task=sky-managed-" in logs.stdout
    controller = skyhop(client, "jobs", "logs", "--controller", str(job_id)).stdout
    assert "Launching cluster" in controller and "torn down" in controller

    queue = skyhop(client, "jobs", "queue").stdout
    for column in ("ID", "TASK", "NAME", "REQUESTED", "SUBMITTED", "TOT. DURATION",
                   "JOB DURATION", "#RECOVERIES", "STATUS"):
        assert column in queue
    assert "SUCCEEDED" in queue

    # The secret reached the job but is in neither the job's row nor its logs (request
    # bodies are another matter: see the requests table's own redaction).
    with sqlite3.connect(client.root / "skyhop.db") as db:
        rows = db.execute("SELECT * FROM managed_jobs").fetchall()
    assert rows and "s3cr3t-value" not in repr(rows)
    for path in (client.root / "managed_jobs").iterdir():
        if not path.name.endswith(".secrets.json"):
            assert b"s3cr3t-value" not in path.read_bytes(), f"secret leaked into {path}"
    secrets_file = client.root / "managed_jobs" / f"{job_id}.secrets.json"
    assert secrets_file.stat().st_mode & 0o077 == 0


def test_failing_job_is_failed_with_exit_code_100(client: ServerProcess, tmp_path: Path) -> None:
    proc = skyhop(client, "jobs", "launch", "-y", "-n", "broken", "--infra", "local",
                  "echo about-to-fail; exit 3")
    assert proc.returncode == 100, proc.stdout + proc.stderr
    (row,) = [r for r in sky.get(sky.jobs.queue(refresh=False)) if r["job_name"] == "broken"]
    assert row["status"] is sky.ManagedJobStatus.FAILED
    assert "failed" in (row["failure_reason"] or "")
    assert sky.jobs.tail_logs(job_id=row["job_id"], follow=False,
                              output_stream=Capture()) == 100  # type: ignore[arg-type]
    assert f"broken-{row['job_id']}" not in clusters()
    saved = sky.jobs.download_logs(name="broken", local_dir=str(tmp_path))
    assert list(saved) == [row["job_id"]]
    assert "about-to-fail" in Path(saved[row["job_id"]]).read_text()
    missing = skyhop(client, "jobs", "logs", "999999")
    assert missing.returncode == 102 and "JobNotFoundError" in missing.stderr


def test_yaml_options_and_a_name_clash_with_a_user_cluster(
    client: ServerProcess, tmp_path: Path
) -> None:
    yaml_file = tmp_path / "job.yaml"
    yaml_file.write_text(
        "name: fromyaml\n"
        "resources:\n  infra: local\n  priority: 7\n"
        "  job_recovery: {strategy: FAILOVER, max_restarts_on_errors: 3}\n"
        "run: echo from-yaml\n"
    )
    proc = skyhop(client, "jobs", "launch", "-y", str(yaml_file))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (row,) = [r for r in sky.get(sky.jobs.queue(refresh=False)) if r["job_name"] == "fromyaml"]
    assert (row["priority"], row["strategy"]) == (7, "FAILOVER")
    assert "from-yaml" in proc.stdout

    # A user's own cluster that happens to have the job's cluster name is not taken over.
    next_id = row["job_id"] + 1
    sky.get(sky.launch({"resources": {"infra": "local"}}, cluster_name=f"clash-{next_id}"))
    try:
        job_id = launch("echo never", "clash")
        assert job_id == next_id
        row = wait_status(job_id, "FAILED_PRECHECKS")
        assert "already exists" in row["failure_reason"]
        assert f"clash-{job_id}" in clusters()
    finally:
        sky.get(sky.down(f"clash-{next_id}"))


def test_failing_setup_is_failed_setup(client: ServerProcess) -> None:
    task = {"name": "nosetup", "setup": "echo setting-up; exit 1", "run": "echo never-runs",
            "resources": {"infra": "local"}}
    job_id = int(sky.get(sky.jobs.launch(task))["job_id"])
    row = wait_status(job_id, "FAILED_SETUP")
    assert "setup failed" in row["failure_reason"]
    text = output(job_id)
    assert "setting-up" in text and "never-runs" not in text
    assert sky.jobs.tail_logs(job_id=job_id, output_stream=Capture()) == 100  # type: ignore[arg-type]


def test_preempted_cluster_is_recovered_with_the_same_task_id(
    client: ServerProcess, tmp_path: Path
) -> None:
    marker = tmp_path / "first-attempt-ran"
    run = (
        f"if [ -f {marker} ]; then echo attempt-2 task=$SKYHOP_TASK_ID; cat ~/scratch/a; "
        "exit 0; fi; "
        f"touch {marker}; echo kept-across-recovery > ~/scratch/a; "
        "echo attempt-1 task=$SKYHOP_TASK_ID; sleep 600"
    )
    job_id = launch(run, "preempt", scratch("mj-preempt-scratch"))
    wait_status(job_id, "RUNNING")
    wait_for(lambda: "attempt-1" in output(job_id), "the first attempt's output is saved")
    name = f"preempt-{job_id}"
    where = cluster_dir(client, name)
    # Preemption: the machine vanishes (its processes and its disks).
    kill_processes_under(where)
    shutil.rmtree(where)
    row = wait_status(job_id, "SUCCEEDED", timeout=90)
    assert row["recovery_count"] == 1
    assert row["restart_count"] == 0
    text = output(job_id)
    first = text.split("attempt-1 task=")[1].split()[0]
    second = text.split("attempt-2 task=")[1].split()[0]
    assert first == second and first.startswith("sky-managed-")
    controller = skyhop(client, "jobs", "logs", "--controller", str(job_id)).stdout
    assert "Recovering: the cluster was preempted" in controller
    assert name not in clusters() and not where.exists()
    # The temporary bucket outlived the recovery (the second attempt read it), not the job.
    assert "kept-across-recovery" in text
    assert "mj-preempt-scratch" not in buckets()
    assert not bucket_dir(client, "mj-preempt-scratch").exists()
    assert row["job_duration"] <= row["duration"]


def test_restart_on_error_within_max_restarts(client: ServerProcess, tmp_path: Path) -> None:
    marker = tmp_path / "failed-once"
    run = f"if [ -f {marker} ]; then echo second-run; exit 0; fi; touch {marker}; exit 1"
    job_id = launch(run, "flaky", job_recovery={"max_restarts_on_errors": 1})
    row = wait_status(job_id, "SUCCEEDED", "FAILED", timeout=90)
    assert row["status"] is sky.ManagedJobStatus.SUCCEEDED
    assert (row["recovery_count"], row["restart_count"]) == (1, 1)
    assert "second-run" in output(job_id)


def test_cancel_a_running_job_tears_its_cluster_down(client: ServerProcess) -> None:
    job_id = launch("echo sleeping; sleep 600", "sleeper", scratch("mj-cancel-scratch"))
    wait_status(job_id, "RUNNING")
    where = cluster_dir(client, f"sleeper-{job_id}")
    assert where.exists()
    assert "mj-cancel-scratch" in buckets()
    # A running job's cluster is left out of `status` unless named or asked for.
    assert f"sleeper-{job_id}" not in clusters()
    assert f"sleeper-{job_id}" in [
        c["name"] for c in sky.get(sky.status(include_managed_jobs=True))
    ]
    assert [c["name"] for c in sky.get(sky.status([f"sleeper-{job_id}"]))] == [
        f"sleeper-{job_id}"
    ]
    assert sky.get(sky.jobs.cancel(job_ids=[job_id])) == [job_id]
    assert record(job_id)["status"] is sky.ManagedJobStatus.CANCELLED
    assert f"sleeper-{job_id}" not in clusters()
    assert not where.exists()
    assert "mj-cancel-scratch" not in buckets()
    assert not bucket_dir(client, "mj-cancel-scratch").exists()
    wait_for(lambda: not processes_under(where), "the job's processes are gone", 10)
    assert sky.jobs.tail_logs(job_id=job_id, output_stream=Capture()) == 103  # type: ignore[arg-type]


@pytest.fixture
def limited(make_server: Callable[..., ServerProcess]) -> Iterator[ServerProcess]:
    server = make_server(env={**FAST, "SKYHOP_JOBS_MAX_RUNNING": "1"})
    with using(ApiClient(server.endpoint, auto_start=False)):
        yield server


def test_scheduler_limit_priority_and_pending_cancel(limited: ServerProcess) -> None:
    first = launch("sleep 600", "first")
    wait_status(first, "RUNNING")
    low = launch("echo low", "low")
    high = launch("echo high", "high", priority=10)
    time.sleep(1.5)
    assert record(low)["status"] is sky.ManagedJobStatus.PENDING
    assert record(high)["status"] is sky.ManagedJobStatus.PENDING
    assert record(high)["details"] == "Waiting for a launch slot."

    # The first job ends: the higher priority one starts next, though submitted later.
    assert sky.get(sky.jobs.cancel(job_ids=[first])) == [first]
    wait_status(high, "STARTING", "RUNNING", "SUCCEEDED")
    assert record(low)["status"] is sky.ManagedJobStatus.PENDING
    wait_status(high, "SUCCEEDED")
    wait_status(low, "SUCCEEDED")

    blocker = launch("sleep 600", "blocker")
    wait_status(blocker, "RUNNING")
    waiting = launch("echo never", "waiting")
    assert record(waiting)["status"] is sky.ManagedJobStatus.PENDING
    assert sky.get(sky.jobs.cancel(name="waiting")) == [waiting]
    assert record(waiting)["status"] is sky.ManagedJobStatus.CANCELLED
    assert record(blocker)["status"] is sky.ManagedJobStatus.RUNNING
    assert sky.get(sky.jobs.cancel(all=True)) == [blocker]
    assert not any(n.startswith(("blocker-", "waiting-")) for n in clusters())


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_server_restart_while_running_resumes_the_same_cluster(
    make_server: Callable[..., ServerProcess], tmp_path: Path, sig: signal.Signals
) -> None:
    root = tmp_path / "restart"
    server = make_server(root, env=FAST)
    release = tmp_path / "release"
    run = f"echo begin; while [ ! -f {release} ]; do sleep 0.1; done; echo end"
    with using(ApiClient(server.endpoint, auto_start=False)):
        job_id = launch(run, "survivor", scratch("mj-restart-scratch"))
        wait_status(job_id, "RUNNING")
        wait_for(lambda: "begin" in output(job_id), "the job started")
    server.kill(sig)
    assert not cluster_dir(server, f"survivor-{job_id}").joinpath("STOPPED").exists()
    restarted = make_server(root, port=server.port, env=FAST)
    with using(ApiClient(restarted.endpoint, auto_start=False)):
        assert record(job_id)["status"] is sky.ManagedJobStatus.RUNNING
        release.touch()
        row = wait_status(job_id, "SUCCEEDED", timeout=60)
        assert row["recovery_count"] == 0
        text = output(job_id)
        assert text.count("begin") == 1 and text.count("end") == 1, text
        controller = Capture()
        sky.jobs.tail_logs(job_id=job_id, controller=True, output_stream=controller)  # type: ignore[arg-type]
        assert controller.text.count("Launching cluster") == 1, controller.text
        assert "Resuming: watching job" in controller.text
        assert f"survivor-{job_id}" not in clusters()
        # The restarted server deleted the bucket the first one made for the job.
        assert buckets() == []
    assert not cluster_dir(restarted, f"survivor-{job_id}").exists()
    assert not bucket_dir(restarted, "mj-restart-scratch").exists()
