"""The node agent driven through its CLI, as the core drives it on a head node."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_harness import TERMINAL, Agent, wait_gone

from skyhop_core.agent.procs import pid_alive


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    a = Agent(tmp_path)
    yield a
    a.close()


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Agent]:
    """Two nodes; rank 1 is reached through a launcher (the remote code path)."""
    a = Agent(tmp_path, nodes=2, launched=(1,))
    yield a
    a.close()


def test_start_is_idempotent_and_stop_ends_the_daemon(agent: Agent) -> None:
    first = agent.cli("start")
    again = agent.cli("start")
    assert first["started"] is True and again == {"pid": first["pid"], "started": False}
    assert agent.cli("stop")["stopped"] is True
    assert wait_gone(first["pid"])
    assert agent.cli("stop")["stopped"] is False


def test_two_cpus_run_two_jobs_and_queue_the_third(agent: Agent) -> None:
    ids = [agent.submit("sleep 30", cpus=1) for _ in range(3)]
    agent.wait(ids[0], {"RUNNING"})
    agent.wait(ids[1], {"RUNNING"})
    time.sleep(0.5)
    assert agent.status(ids[2]) == "PENDING"
    queue = agent.cli("queue")
    assert [j["job_id"] for j in queue] == ids[::-1]
    assert queue[0]["resources"] == "1x[CPU:1]"
    assert agent.cli("cancel", "--job-ids", str(ids[0])) == {"cancelled": [ids[0]]}
    agent.wait(ids[2], {"RUNNING"})  # the freed CPU goes to the queued job
    assert sorted(agent.cli("cancel", "--all")["cancelled"]) == ids[1:]
    assert agent.cli("queue", "--skip-finished") == []


def test_statuses_and_tail_exit_codes(agent: Agent) -> None:
    ok = agent.submit("echo run-output", setup="echo setup-output")
    bad_setup = agent.submit("echo never", setup="echo broken >&2; exit 1")
    bad_run = agent.submit("exit 3")
    assert agent.tail(str(ok), "--follow") == (
        0,
        "⚙︎ Running setup on 1 node.\n(setup) setup-output\n"
        "⚙︎ Job started: running on 1 node.\nrun-output\n",
    )  # the prefixes and lines of docs/cli-output.md
    code, text = agent.tail(str(bad_setup), "--follow")
    assert code == 100 and "broken" in text and "never" not in text
    assert agent.status(bad_setup) == "FAILED_SETUP"
    code, text = agent.tail(str(bad_run), "--follow")
    assert code == 100 and "exit code 3" in text
    assert agent.status(bad_run) == "FAILED"
    assert agent.tail("999")[0] == 102
    slow = agent.submit("echo started; sleep 30")
    agent.wait(slow, {"RUNNING"})
    assert agent.tail(str(slow))[0] == 101
    agent.cli("cancel", "--job-ids", str(slow))
    code, text = agent.tail("--follow")  # no id: the latest job
    assert code == 103 and "started" in text
    record = next(j for j in agent.cli("queue") if j["job_id"] == slow)
    assert record["status"] == "CANCELLED" and record["end_at"] >= record["start_at"]


def test_tail_last_lines(agent: Agent) -> None:
    job = agent.submit("for i in 1 2 3 4 5; do echo line$i; done")
    agent.wait(job, TERMINAL)
    assert agent.tail(str(job), "--tail", "2") == (0, "line4\nline5\n")


def test_follow_sees_output_quickly_and_ends_with_the_job(agent: Agent) -> None:
    agent.cli("start")
    began = time.monotonic()
    job = agent.submit("echo first; sleep 0.5; echo last")
    code, text = agent.tail(str(job), "--follow")
    elapsed = time.monotonic() - began
    assert (code, text) == (0, "first\nlast\n")
    assert elapsed < 2.5, f"follow took {elapsed:.2f}s for a 0.5s job"


def test_cancel_kills_the_whole_process_tree(agent: Agent) -> None:
    job = agent.submit("sleep 300 & echo $! > child.pid; echo $$ > shell.pid; wait")
    agent.wait(job, {"RUNNING"})
    home = agent.homes[0]
    deadline = time.monotonic() + 5
    while not (home / "child.pid").exists() or not (home / "shell.pid").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.05)
    child, shell = int((home / "child.pid").read_text()), int((home / "shell.pid").read_text())
    assert pid_alive(child) and pid_alive(shell)
    assert agent.cli("cancel", "--job-ids", str(job)) == {"cancelled": [job]}
    assert wait_gone(child) and wait_gone(shell)
    assert agent.status(job) == "CANCELLED"
    assert agent.cli("cancel", "--all") == {"cancelled": []}


def test_cancel_filters_by_user_hash(agent: Agent) -> None:
    mine = agent.submit("sleep 30", user_hash="me", cpus=2)
    theirs = agent.submit("sleep 30", user_hash="them", cpus=2)
    assert agent.cli("cancel", "--all", "--user-hash", "them") == {"cancelled": [theirs]}
    agent.wait(mine, {"RUNNING"})


def test_multi_node_prefixes_ranks_and_sets_the_environment(pair: Agent) -> None:
    script = (
        'echo "rank=$SKYHOP_NODE_RANK n=$SKYHOP_NUM_NODES gpus=$SKYHOP_NUM_GPUS_PER_NODE '
        'task=$SKYHOP_TASK_ID greet=$GREETING secret=$TOKEN"; '
        'echo "ips=$(echo "$SKYHOP_NODE_IPS" | paste -sd,)"; echo "pwd=$(pwd)"; '
        'echo "info=$SKYHOP_CLUSTER_INFO"'
    )
    for home in pair.homes:
        (home / "wd").mkdir()
    job = pair.submit(
        script,
        num_nodes=2,
        envs={"GREETING": "hi there"},
        secrets={"TOKEN": "s3 cr'et"},
        task_id="task-7",
        setup="echo setup-$SKYHOP_NODE_RANK",
        workdir="~/wd",
    )
    code, text = pair.tail(str(job), "--follow")
    assert code == 0, text
    lines = text.splitlines()
    for rank in (0, 1):
        prefix = f"(rank {rank}) "
        assert f"(setup, rank {rank}) setup-{rank}" in lines
        assert f"{prefix}rank={rank} n=2 gpus=0 task=task-7 greet=hi there secret=s3 cr'et" in lines
        assert f"{prefix}ips=127.0.0.1,127.0.0.2" in lines
        assert f"{prefix}pwd={pair.homes[rank] / 'wd'}" in lines
        info = json.loads(
            next(x for x in lines if x.startswith(f"{prefix}info="))[len(prefix) + 5 :]
        )
        assert info["cluster_name"] == "test-cluster" and info["num_nodes"] == 2
    job_lines = [x for x in lines if not x.startswith("⚙︎ ")]  # the agent's step lines
    assert all(line.startswith(("(rank ", "(setup, rank ")) for line in job_lines)


def test_run_list_gives_each_rank_its_command(pair: Agent) -> None:
    job = pair.submit([None, "echo only-rank-one"], num_nodes=2)
    code, text = pair.tail(str(job), "--follow")
    assert (code, text) == (0, "(rank 1) only-rank-one\n")


def test_a_failing_rank_fails_the_job_and_stops_the_others(pair: Agent) -> None:
    job = pair.submit(
        'if [ "$SKYHOP_NODE_RANK" = 0 ]; then echo $$ > r0.pid; exec sleep 300; fi; sleep 0.3; exit 4',
        num_nodes=2,
    )
    code, text = pair.tail(str(job), "--follow", timeout=10)
    assert code == 100 and "(rank 1) skyhop: run failed with exit code 4" in text
    assert wait_gone(int((pair.homes[0] / "r0.pid").read_text()))


def test_a_job_too_big_for_the_cluster_fails_at_once(agent: Agent) -> None:
    job = agent.submit("true", cpus=64)
    code, text = agent.tail(str(job), "--follow")
    assert code == 100 and "more than this cluster has" in text
    assert agent.tail(str(agent.submit("echo after")), "--follow") == (0, "after\n")


def test_missing_workdir_fails_the_job(agent: Agent) -> None:
    code, text = agent.tail(str(agent.submit("true", workdir="~/nowhere")), "--follow")
    assert code == 100 and "does not exist" in text


def test_invalid_specs_are_rejected(agent: Agent) -> None:
    done = agent.run("submit", input=json.dumps({"name": "x", "run": "true", "envs": {"A B": "1"}}))
    assert done.returncode == 2 and b"not valid environment variable names" in done.stderr
    assert agent.run("submit", input="not json").returncode == 2
    assert agent.run("cancel").returncode == 2


def test_idle_seconds(agent: Agent) -> None:
    agent.cli("start")
    time.sleep(0.3)
    assert agent.cli("idle")["idle_seconds"] >= 0.2
    job = agent.submit("sleep 30")
    assert agent.cli("idle")["idle_seconds"] == 0
    agent.wait(job, {"RUNNING"})
    agent.cli("cancel", "--all")
    agent.wait(job, TERMINAL)
    assert 0 <= agent.cli("idle")["idle_seconds"] < 5


def test_stop_fails_running_jobs_cancels_waiting_ones_and_kills_processes(agent: Agent) -> None:
    running = agent.submit("echo $$ > r.pid; exec sleep 300", cpus=2)
    pending = agent.submit("sleep 300", cpus=2)
    agent.wait(running, {"RUNNING"})
    deadline = time.monotonic() + 5
    while not (agent.homes[0] / "r.pid").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.05)
    pid = int((agent.homes[0] / "r.pid").read_text())
    result = agent.cli("stop")
    assert result["stopped"] is True
    assert (result["failed_driver"], result["cancelled"]) == ([running], [pending])
    assert (agent.status(running), agent.status(pending)) == ("FAILED_DRIVER", "CANCELLED")
    assert wait_gone(pid)
    assert agent.daemon_pid() is None


def test_a_dead_daemon_leaves_failed_driver_jobs(agent: Agent) -> None:
    job = agent.submit("echo $$ > r.pid; exec sleep 300")
    agent.wait(job, {"RUNNING"})
    deadline = time.monotonic() + 5
    while not (agent.homes[0] / "r.pid").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.05)
    pid = int((agent.homes[0] / "r.pid").read_text())
    daemon = agent.daemon_pid()
    assert daemon is not None
    os.kill(daemon, signal.SIGKILL)
    assert wait_gone(daemon)
    agent.cli("start")
    assert agent.status(job) == "FAILED_DRIVER"
    assert wait_gone(pid)
    assert agent.tail(str(job))[0] == 100


def test_jobs_survive_the_submitting_process(agent: Agent) -> None:
    # submit returns at once; the daemon, not the CLI process, runs the job.
    job = agent.submit("sleep 0.3; echo survived")
    assert agent.tail(str(job), "--follow") == (0, "survived\n")


def test_a_rewritten_cluster_json_is_picked_up(agent: Agent) -> None:
    first = agent.submit("sleep 30", cpus=2)
    agent.wait(first, {"RUNNING"})
    cluster = json.loads((agent.root / "cluster.json").read_text())
    cluster["nodes"][0]["cpus"] = 4
    (agent.root / "cluster.json").write_text(json.dumps(cluster))
    second = agent.submit("sleep 30", cpus=2)
    agent.wait(second, {"RUNNING"})  # 4 CPUs now: both run; the first kept its 2
    third = agent.submit("sleep 30", cpus=2)
    time.sleep(0.5)
    assert agent.status(third) == "PENDING"


def test_start_without_cluster_json_fails_clearly(agent: Agent) -> None:
    (agent.root / "cluster.json").unlink()
    done = agent.run("start")
    assert done.returncode == 1 and b"cluster.json" in done.stderr


def _files_contain(root: Path, needle: bytes) -> list[str]:
    hits = []
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            with open(path, "rb") as f:
                if needle in f.read():
                    hits.append(path)
    return hits


def test_secrets_reach_the_job_but_never_the_disk(agent: Agent) -> None:
    secret = "sekrit-" + os.urandom(6).hex()
    job = agent.submit(
        'echo "len=${#TOKEN} rev=$(echo "$TOKEN" | rev)"; sleep 0.5', secrets={"TOKEN": secret}
    )
    code, text = agent.tail(str(job), "--follow")
    assert code == 0, text
    assert f"len={len(secret)} rev={secret[::-1]}" in text  # it was in the environment
    assert _files_contain(agent.root, secret.encode()) == []  # agent.db, its WAL, logs


def test_a_job_whose_secrets_were_lost_fails_saying_so(agent: Agent) -> None:
    # A daemon that dies with a queued job takes the job's secrets with it.
    blocker = agent.submit("sleep 30", cpus=2)
    agent.wait(blocker, {"RUNNING"})
    queued = agent.submit("echo ran", secrets={"TOKEN": "x"})
    pid = agent.daemon_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert wait_gone(pid)
    with sqlite3.connect(agent.root / "agent.db") as conn:  # it was queued long ago
        conn.execute("UPDATE jobs SET submitted_at = submitted_at - 3600 WHERE id = ?", (queued,))
    agent.cli("start")
    assert agent.wait(queued, TERMINAL) == "FAILED_DRIVER"
    code, text = agent.tail(str(queued))
    assert "secrets never reached the agent" in text and "ran" not in text.split("\n")


def test_a_run_and_setup_longer_than_the_argument_limit_still_run(pair: Agent) -> None:
    """3 MB commands (one argv string may hold 128 KiB) on a local node and through a
    launcher; neither is passed as an argument, and the scripts are gone afterwards."""
    filler = "".join(f": {'x' * 90} {i}\n" for i in range(32_000))
    setup = "echo setup-begin\n" + filler + "echo setup-end\n"
    run = 'echo "run-begin $SKYHOP_NODE_RANK"\n' + filler + 'echo "run-end $SKYHOP_NODE_RANK"\n'
    assert len(run) > 3_000_000
    job = pair.submit(run, setup=setup, num_nodes=2)
    code, text = pair.tail(str(job), "--follow")
    assert code == 0, text
    for rank in (0, 1):
        for line in ("setup-begin", "setup-end"):
            assert f"(setup, rank {rank}) {line}\n" in text
        for line in (f"run-begin {rank}", f"run-end {rank}"):
            assert f"(rank {rank}) {line}\n" in text
    assert not list((pair.root / "jobs" / str(job)).glob("*.sh"))
