"""SkyPilot's job variables (SKYPILOT_*) carry our values in setup and run, and GPUs are
scheduled in fractions: task files written for SkyPilot run unchanged."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_harness import Agent

NAMES = ("NODE_RANK", "NODE_IPS", "NUM_NODES", "NUM_GPUS_PER_NODE", "TASK_ID", "CLUSTER_INFO")


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Agent]:
    a = Agent(tmp_path, nodes=2, launched=(1,), gpus={"T4": 1})
    yield a
    a.close()


def _dump(prefix: str, phase: str) -> str:
    # One JSON line per rank and phase with every variable, so values compare exactly.
    fields = ", ".join(f'"{n}": os.environ.get("{prefix}{n}")' for n in (*NAMES, "SETUP_NODE_RANK"))
    return f"python3 -c 'import json, os; print(json.dumps({{\"phase\": \"{phase}\", {fields}}}))'"


def _records(text: str) -> list[tuple[int, dict]]:
    out = []
    for line in text.splitlines():
        # "(rank R) {...}" from run, "(setup, rank R) {...}" from setup; the step and
        # summary lines around them carry no JSON.
        found = re.match(r"\((?:setup, )?rank (\d+)\) (\{.*\})$", line)
        if found:
            out.append((int(found.group(1)), json.loads(found.group(2))))
    return out


def test_skypilot_names_have_our_values_in_setup_and_run(pair: Agent) -> None:
    job = pair.submit(
        f"{_dump('SKYHOP_', 'run-ours')}; {_dump('SKYPILOT_', 'run-theirs')}",
        setup=f"{_dump('SKYHOP_', 'setup-ours')}; {_dump('SKYPILOT_', 'setup-theirs')}",
        num_nodes=2, gpus={"T4": 1}, task_id="task-9",
    )
    code, text = pair.tail(str(job), "--follow")
    assert code == 0, text
    seen = {(rank, rec.pop("phase")): rec for rank, rec in _records(text)}
    assert len(seen) == 8
    for rank in (0, 1):
        for phase in ("setup", "run"):
            ours, theirs = seen[(rank, f"{phase}-ours")], seen[(rank, f"{phase}-theirs")]
            assert ours == theirs
            assert theirs["NODE_RANK"] == str(rank)
            assert theirs["NODE_IPS"] == "127.0.0.1\n127.0.0.2"
            assert theirs["NUM_NODES"] == "2" and theirs["NUM_GPUS_PER_NODE"] == "1"
            assert theirs["TASK_ID"] == "task-9"
            assert json.loads(theirs["CLUSTER_INFO"])["num_nodes"] == 2
            # The setup node rank is set during setup only.
            assert theirs["SETUP_NODE_RANK"] == (str(rank) if phase == "setup" else None)


def test_fractional_gpus_share_one_device(tmp_path: Path) -> None:
    agent = Agent(tmp_path, gpus={"T4": 1}, cpus=8)
    try:
        halves = [agent.submit("sleep 30", cpus=1, gpus={"T4": 0.5}) for _ in range(3)]
        agent.wait(halves[0], {"RUNNING"})
        agent.wait(halves[1], {"RUNNING"})  # two halves fit on one T4
        time.sleep(0.5)
        assert agent.status(halves[2]) == "PENDING"  # a third half does not
        queue = {j["job_id"]: j for j in agent.cli("queue")}
        assert queue[halves[0]]["resources"] == "1x[CPU:1, T4:0.5]"
        agent.cli("cancel", "--job-ids", str(halves[0]))
        agent.wait(halves[2], {"RUNNING"})  # the freed half goes to the queued job
        agent.cli("cancel", "--all")
        code, text = agent.tail(str(agent.submit("echo gpus=$SKYPILOT_NUM_GPUS_PER_NODE",
                                                  cpus=1, gpus={"T4": 0.25})), "--follow")
        assert (code, text) == (0, "gpus=1\n")  # a share still sees one device
        # More than the node has is refused at once, fractions included.
        code, text = agent.tail(str(agent.submit("true", gpus={"T4": 1.5})), "--follow")
        assert code == 100 and "more than this cluster has" in text
    finally:
        agent.cli("cancel", "--all")
        agent.close()
