"""``skyhop cost-report`` and the records' ``cost``: the offer's hourly price times the
time UP, with a priced test backend (tests/fixtures/regional_backend.py: r1 costs $1/h)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from clirun import sky
from serverproc import ServerProcess, kill_processes_under

from skyhop_core.models.status import ClusterStatus
from skyhop_core.state.clusters import _clock, cost_so_far

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture
def priced(tmp_path: Path) -> Iterator[ServerProcess]:
    env = {"SKYHOP_PLUGINS": "regional_backend", "PYTHONPATH": str(FIXTURES),
           "REGIONAL_FULL": str(tmp_path / "full")}  # fmt: skip
    server = ServerProcess(tmp_path / "state", env=env).start()
    yield server
    server.stop()
    kill_processes_under(server.root)


def test_cost_report_charges_the_offer_price_for_the_time_up(priced: ServerProcess) -> None:
    sky(priced, "launch", "-y", "-c", "pcost", "--infra", "regional/r1", "--num-nodes", "2", "true")
    time.sleep(1.0)
    report = sky(priced, "cost-report").stdout.splitlines()
    header, row = report[0].split(), next(r for r in report if r.startswith("pcost"))
    assert "$/HR" in header and "COST" in report[0]
    assert " 2.00 " in row  # $1/h per node, two nodes
    assert report[-1].startswith("Total: $ ")
    wide = sky(priced, "status", "-a").stdout
    assert "2.00" in wide.splitlines()[1]


def test_a_torn_down_cluster_stays_in_the_report_with_what_it_cost(priced: ServerProcess) -> None:
    """As SkyPilot's: a cluster that is gone is TERMINATED in the report, at the cost it
    had; --days bounds how far back; a launch that never came UP costs nothing."""
    import skyhop as skysdk
    from skyhop.client import ApiClient, using

    sky(priced, "launch", "-y", "-c", "gone", "--infra", "regional/r1", "true")
    time.sleep(1.0)
    with using(ApiClient(priced.endpoint, auto_start=False)):
        (live,) = skysdk.get(skysdk.cost_report())
    assert (live["status"], live["terminated_at"], live["num_nodes"]) == (ClusterStatus.UP, None, 1)
    sky(priced, "down", "-y", "gone")
    (priced.root.parent / "full").write_text("r1\nr2\n")  # no capacity left anywhere
    assert sky(priced, "launch", "-y", "-c", "nocap", "--infra", "regional", "true",
               check=False).returncode != 0  # fmt: skip
    report = sky(priced, "cost-report").stdout
    (row,) = [r for r in report.splitlines() if r.startswith("gone")]
    assert "TERMINATED" in row and " 1.00 " in row  # its $/h
    assert "nocap" not in report
    with using(ApiClient(priced.endpoint, auto_start=False)):
        (rec,) = skysdk.get(skysdk.cost_report())
    assert rec["name"] == "gone" and rec["status"] is None and rec["terminated_at"]
    assert rec["duration"] >= 1.0
    assert rec["total_cost"] == pytest.approx(rec["duration"] / 3600, rel=0.01)
    # Another user's report does not have it.
    other = {"X-Skyhop-User": "eve", "X-Skyhop-User-Hash": "e0e00002"}
    r = httpx.post(f"{priced.endpoint}/api/v1/cost_report", json={}, headers=other, timeout=30)
    done = httpx.get(f"{priced.endpoint}/api/get", params={"request_id": r.json()["request_id"]},
                     timeout=60).json()  # fmt: skip
    assert (done["status"], done["result"]) == ("SUCCEEDED", [])
    assert "No clusters, existing or torn down in the last 0 days." in sky(
        priced, "cost-report", "--days", "0").stdout
    bad = sky(priced, "cost-report", "--days", "-1", check=False)
    assert bad.returncode == 2 and "-1" in bad.stderr


def test_the_clock_runs_while_up_and_stops_when_stopped() -> None:
    meta = {"price_per_hour": 3.6}
    up = _clock(meta, ClusterStatus.UP.value, now=1000.0)
    assert cost_so_far(up, now=1100.0) == pytest.approx(0.1)  # 100 s at $3.6/h
    stopped = _clock(up, ClusterStatus.STOPPED.value, now=1100.0)
    assert cost_so_far(stopped, now=5000.0) == pytest.approx(0.1)  # no charge while stopped
    again = _clock(stopped, ClusterStatus.UP.value, now=6000.0)
    assert cost_so_far(again, now=6100.0) == pytest.approx(0.2)
    assert _clock(again, ClusterStatus.UP.value, now=7000.0) == again  # already running
