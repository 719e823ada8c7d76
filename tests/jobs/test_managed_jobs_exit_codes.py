"""``resources.job_recovery``: ``recover_on_exit_codes`` and ``max_restarts_on_errors``
as SkyPilot documents them, against a real API server on the local backend.

- An exit code listed in ``recover_on_exit_codes`` always recovers the job and does not
  count against ``max_restarts_on_errors``; any other failure counts, and the job
  FAILS once the restarts are spent.
- The restart counter is in the job's row: a server restarted (SIGKILL) after one
  restart does not give the job its restarts back (SkyPilot's reset, ours do not).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jobcalls import controller_log, record, wait_status
from serverproc import ServerProcess

import skyhop as sky
from skyhop.client import ApiClient, using

pytestmark = pytest.mark.timeout(180)

FAST = {
    "SKYHOP_JOBS_POLL_SECONDS": "0.2",
    # The jobs count their attempts in host files, which a sandboxed node cannot write.
    "SKYHOP_LOCAL_SANDBOX": "off",
    "SKYHOP_JOBS_RETRY_BASE": "0.2",
    "SKYHOP_SERVER_LEASE_SECONDS": "3",
}


def attempts_script(counter: Path, codes: list[int]) -> str:
    """A run that exits with ``codes[n]`` on its n-th attempt (0 after the last)."""
    cases = " ".join(f"{i}) exit {code};;" for i, code in enumerate(codes))
    return (
        f"n=$(cat {counter} 2>/dev/null || echo 0); echo $((n + 1)) > {counter}; "
        f"echo attempt-$n; case $n in {cases} esac; exit 0"
    )


def launch(run: str, name: str, recovery: dict[str, Any]) -> int:
    task = {"name": name, "run": run,
            "resources": {"infra": "local", "job_recovery": recovery}}  # fmt: skip
    return int(sky.get(sky.jobs.launch(task))["job_id"])


def test_listed_exit_codes_recover_without_spending_restarts(
    make_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = make_server(env=FAST)
    with using(ApiClient(server.endpoint, auto_start=False)):
        # 29 (listed) twice: free; then 1: the one allowed restart; then success.
        counter = tmp_path / "a"
        job_id = launch(attempts_script(counter, [29, 29, 1]), "codes",
                        {"recover_on_exit_codes": [29], "max_restarts_on_errors": 1})
        row = wait_status(job_id, "SUCCEEDED", "FAILED", timeout=120)
        assert row["status"] is sky.ManagedJobStatus.SUCCEEDED, controller_log(job_id)
        assert (row["recovery_count"], row["restart_count"]) == (3, 1)
        log = controller_log(job_id)
        assert log.count("exited with code 29, which is in recover_on_exit_codes") == 2
        assert "restart 1 of 1" in log

        # An unlisted code with no restarts left: FAILED at once.
        counter = tmp_path / "b"
        job_id = launch(attempts_script(counter, [3]), "unlisted",
                        {"recover_on_exit_codes": 29, "max_restarts_on_errors": 0})
        row = wait_status(job_id, "FAILED", timeout=60)
        assert (row["recovery_count"], row["restart_count"]) == (0, 0)
        assert counter.read_text().strip() == "1"


def test_the_restart_counter_survives_a_server_restart(
    make_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    root = tmp_path / "state"
    server = make_server(root, env=FAST)
    counter = tmp_path / "count"
    release = tmp_path / "release"
    # Attempt 0 fails; attempt 1 waits for the test, then fails too.
    run = (
        f"n=$(cat {counter} 2>/dev/null || echo 0); echo $((n + 1)) > {counter}; "
        f"echo attempt-$n; if [ $n -ge 1 ]; then while [ ! -f {release} ]; do sleep 0.1; "
        "done; fi; exit 1"
    )
    with using(ApiClient(server.endpoint, auto_start=False)):
        job_id = launch(run, "counted", {"max_restarts_on_errors": 1})
        wait_status(job_id, "RECOVERING", "RUNNING", timeout=60)
        deadline = time.monotonic() + 60
        while (row := record(job_id))["restart_count"] < 1 or row["status"].value != "RUNNING":
            assert not row["status"].is_terminal() and time.monotonic() < deadline, row
            time.sleep(0.1)
    server.kill(signal.SIGKILL)
    restarted = make_server(root, port=server.port, env=FAST)
    with using(ApiClient(restarted.endpoint, auto_start=False)):
        assert record(job_id)["restart_count"] == 1
        release.touch()
        row = wait_status(job_id, "FAILED", timeout=60)
        assert row["restart_count"] == 1
        assert counter.read_text().strip() == "2", "the spent restart was given back"
