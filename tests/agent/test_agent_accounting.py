"""Per-node CPU/GPU accounting of the agent's scheduler."""

from __future__ import annotations

from skyhop_core.agent.cluster import Accounting, ClusterInfo, resources_str


def cluster(*nodes: tuple[float, dict[str, int]]) -> ClusterInfo:
    return ClusterInfo(
        {"nodes": [{"rank": r, "cpus": c, "gpus": g} for r, (c, g) in enumerate(nodes)]}
    )


def test_gpus_are_counted_per_node_and_released() -> None:
    acct = Accounting(cluster((8, {"A100": 2}), (8, {"A100": 1})))
    assert acct.allocate(1, 1, {"a100": 2}, 1) == [0]
    assert acct.allocate(2, 1, {"A100": 1}, 2) is None  # node 0 has no free GPU now
    assert acct.allocate(3, 1, {"A100": 1}, 1) == [1]
    acct.release(1)
    assert acct.allocate(2, 1, {"A100": 1}, 2) is None  # node 1 is busy
    acct.release(3)
    assert acct.allocate(2, 1, {"A100": 1}, 2) == [0, 1]


def test_feasibility_ignores_current_load() -> None:
    acct = Accounting(cluster((2, {}), (2, {})))
    assert acct.allocate(1, 2, {}, 2) == [0, 1]
    assert acct.feasible(2, {}, 2)
    assert not acct.feasible(3, {}, 1)
    assert not acct.feasible(1, {}, 3)
    assert not acct.feasible(1, {"T4": 1}, 1)


def test_fractional_cpus_add_up() -> None:
    acct = Accounting(cluster((1, {})))
    assert acct.allocate(1, 0.5, {}, 1) == [0]
    assert acct.allocate(2, 0.5, {}, 1) == [0]
    assert acct.allocate(3, 0.5, {}, 1) is None


def test_resources_string() -> None:
    assert resources_str(2, 1.0, {"A100": 1}) == "2x[CPU:1, A100:1]"
    assert resources_str(1, 0.5, {}) == "1x[CPU:0.5]"
