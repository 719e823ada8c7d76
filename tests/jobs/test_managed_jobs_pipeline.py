"""Pipelines: a managed job of several tasks, run in order, each on its own cluster.

Against a real API server on the local backend: a multi-document YAML runs its tasks in
order (CLI, exit 0, queue shows the job row and its task rows), a failing task stops the
pipeline and the rest are CANCELLED without running, a task preempted mid-pipeline
recovers with the same SKYHOP_TASK_ID, and ``skyhop.Dag`` builds pipelines in Python.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jobcalls import Capture, controller_log
from serverproc import ServerProcess, kill_processes_under

import skyhop as sky
from skyhop.client import ApiClient, current_client, using

pytestmark = pytest.mark.timeout(180)

FAST = {
    "SKYHOP_JOBS_POLL_SECONDS": "0.2",
    # The jobs signal the test through host files, which a sandboxed node cannot write.
    "SKYHOP_LOCAL_SANDBOX": "off",
    "SKYHOP_JOBS_RETRY_BASE": "0.2",
    "SKYHOP_SERVER_LEASE_SECONDS": "3",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("pipelines")
    proc = ServerProcess(root, env=FAST).start()
    with using(ApiClient(proc.endpoint, auto_start=False)):
        yield proc
    proc.stop()
    kill_processes_under(root)


def tasks_of(job_id: int) -> list[dict[str, Any]]:
    rows = sky.get(sky.jobs.queue(refresh=False, job_ids=[job_id]))
    return sorted((dict(r) for r in rows), key=lambda r: r["task_id"])


def wait_done(job_id: int, timeout: float = 90) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = tasks_of(job_id)
        if all(r["status"].is_terminal() for r in rows):
            return rows
        assert time.monotonic() < deadline, (rows, controller_log(job_id))
        time.sleep(0.2)


def output(job_id: int) -> str:
    out = Capture()
    sky.jobs.tail_logs(job_id=job_id, follow=False, output_stream=out)  # type: ignore[arg-type]
    return out.text


def clusters() -> list[str]:
    return [c["name"] for c in sky.get(sky.status())]


def test_a_multi_document_yaml_runs_its_tasks_in_order(
    server: ServerProcess, tmp_path: Path
) -> None:
    spec = tmp_path / "pipe.yaml"
    spec.write_text(
        "name: pipe\n"
        "---\n"
        "name: prepare\nresources: {infra: local}\n"
        "run: echo step-one task=$SKYHOP_TASK_ID pilot=$SKYPILOT_TASK_ID\n"
        "---\n"
        "name: train\nresources: {infra: local}\nenvs: {WHAT: two}\n"
        "run: echo step-$WHAT task=$SKYHOP_TASK_ID\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "skyhop.cli", "jobs", "launch", "-y", str(spec)],
        env=server.env, capture_output=True, text=True, timeout=150,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.index("step-one") < proc.stdout.index("step-two")

    rows = [dict(r) for r in sky.get(sky.jobs.queue(refresh=False)) if r["job_name"] == "pipe"]
    assert [(r["task_id"], r["task_name"]) for r in sorted(rows, key=lambda r: r["task_id"])] \
        == [(0, "prepare"), (1, "train")]
    job_id = rows[0]["job_id"]
    assert all(r["status"] is sky.ManagedJobStatus.SUCCEEDED for r in rows)
    assert {r["cluster_name"] for r in rows} == {f"pipe-{job_id}-0", f"pipe-{job_id}-1"}
    assert not any(n.startswith(f"pipe-{job_id}") for n in clusters())

    text = output(job_id)
    first = text.split("step-one task=")[1].split()[0]
    second = text.split("step-two task=")[1].split()[0]
    assert first.endswith(f"_prepare_{job_id}-0") and second.endswith(f"_train_{job_id}-1")
    assert f"pilot={first}" in text  # SKYPILOT_TASK_ID is the same ID

    queue = subprocess.run(
        [sys.executable, "-m", "skyhop.cli", "jobs", "queue"],
        env=server.env, capture_output=True, text=True, timeout=60,
    ).stdout
    lines = [line for line in queue.splitlines() if "pipe" in line or "↳" in line]
    assert len(lines) >= 3, queue
    head = next(i for i, line in enumerate(lines) if " pipe " in f" {line} ")
    assert "SUCCEEDED" in lines[head]
    assert "↳ prepare" in lines[head + 1] and "↳ train" in lines[head + 2]


def test_a_failing_task_stops_the_pipeline_and_the_rest_are_cancelled(
    server: ServerProcess, tmp_path: Path
) -> None:
    never = tmp_path / "third-ran"
    with sky.Dag(name="breaks") as dag:
        sky.Task(name="fine", run="echo fine-ran", resources=sky.Resources(infra="local"))
        sky.Task(name="broken", run="echo broken-ran; exit 7",
                 resources=sky.Resources(infra="local"))
        sky.Task(name="after", run=f"touch {never}", resources=sky.Resources(infra="local"))
    assert [t.name for t in dag.tasks] == ["fine", "broken", "after"]
    job_id = int(sky.get(sky.jobs.launch(dag))["job_id"])
    rows = wait_done(job_id)
    assert [r["status"].value for r in rows] == ["SUCCEEDED", "FAILED", "CANCELLED"]
    assert all(r["job_name"] == "breaks" for r in rows)
    assert "did not succeed" in rows[2]["failure_reason"]
    assert not never.exists()
    text = output(job_id)
    assert "fine-ran" in text and "broken-ran" in text
    assert sky.jobs.tail_logs(job_id=job_id, output_stream=Capture()) == 100  # type: ignore[arg-type]
    assert f"breaks-{job_id}-2" not in controller_log(job_id)  # never launched
    assert not any(n.startswith(f"breaks-{job_id}") for n in clusters())


def test_a_task_preempted_mid_pipeline_recovers_with_the_same_task_id(
    server: ServerProcess, tmp_path: Path
) -> None:
    marker = tmp_path / "second-task-ran"
    run = (
        f"if [ -f {marker} ]; then echo again task=$SKYHOP_TASK_ID; exit 0; fi; "
        f"touch {marker}; echo first task=$SKYHOP_TASK_ID; sleep 600"
    )
    dag = sky.Dag("resilient")
    dag.add(sky.Task(name="one", run="echo one-done", resources=sky.Resources(infra="local")))
    dag.add(sky.Task(name="two", run=run, resources=sky.Resources(infra="local")))
    job_id = int(sky.get(sky.jobs.launch(dag))["job_id"])
    deadline = time.monotonic() + 60
    while "first task=" not in output(job_id):
        assert time.monotonic() < deadline, controller_log(job_id)
        time.sleep(0.2)
    rows = tasks_of(job_id)
    assert [r["status"].value for r in rows] == ["SUCCEEDED", "RUNNING"]
    where = server.root / "backends" / "local" / "clusters" / f"resilient-{job_id}-1"
    kill_processes_under(where)
    shutil.rmtree(where)
    rows = wait_done(job_id)
    assert [r["status"].value for r in rows] == ["SUCCEEDED", "SUCCEEDED"]
    assert [r["recovery_count"] for r in rows] == [0, 1]
    text = output(job_id)
    assert text.count("one-done") == 1  # the finished task did not run again
    first = text.split("first task=")[1].split()[0]
    again = text.split("again task=")[1].split()[0]
    assert first == again and first.endswith(f"_two_{job_id}-1")


def test_bad_pipelines_are_refused(server: ServerProcess, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no tasks"):
        sky.jobs.launch(sky.Dag("empty"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: p\n---\nrun: echo ok\n---\nrun: echo x\nresources: {cpus: lots}\n")
    with pytest.raises(sky.exceptions.TaskValidationError, match=r"task 1"):
        sky.Dag.from_yaml(str(bad))
    both = {"task": {"run": "true"}, "tasks": [{"run": "true"}]}
    with pytest.raises(ValueError, match="exactly one"):
        sky.get(current_client().submit("jobs_launch", both))
