"""``skyhop cost-report`` and the records' ``cost``: the offer's hourly price times the
time UP, with a priced test backend (tests/fixtures/regional_backend.py: r1 costs $1/h)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

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


def test_the_clock_runs_while_up_and_stops_when_stopped() -> None:
    meta = {"price_per_hour": 3.6}
    up = _clock(meta, ClusterStatus.UP.value, now=1000.0)
    assert cost_so_far(up, now=1100.0) == pytest.approx(0.1)  # 100 s at $3.6/h
    stopped = _clock(up, ClusterStatus.STOPPED.value, now=1100.0)
    assert cost_so_far(stopped, now=5000.0) == pytest.approx(0.1)  # no charge while stopped
    again = _clock(stopped, ClusterStatus.UP.value, now=6000.0)
    assert cost_so_far(again, now=6100.0) == pytest.approx(0.2)
    assert _clock(again, ClusterStatus.UP.value, now=7000.0) == again  # already running
