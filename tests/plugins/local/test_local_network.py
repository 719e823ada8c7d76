"""Address leases of local nodes' networks (no namespaces needed): nodes leasing at the
same moment each get an address of their own, a node keeps its address, and a lease
whose node is gone is taken over."""

from __future__ import annotations

import threading
from pathlib import Path

from skyhop_local.network import NetworkConfig, NodeNetwork


def node(tmp_path: Path, name: str) -> NodeNetwork:
    layer = tmp_path / "layers" / name
    layer.mkdir(parents=True)
    config = NetworkConfig(subnet="10.149.0.0/27", registry=str(tmp_path / "registry"))
    return NodeNetwork(str(layer), config)


def test_nodes_leasing_at_once_get_addresses_of_their_own(tmp_path: Path) -> None:
    for round_ in range(10):
        nodes = [node(tmp_path / str(round_), f"n{i}") for i in range(12)]
        got: list[str] = []
        start = threading.Barrier(len(nodes))

        def lease(n: NodeNetwork, start: threading.Barrier, got: list[str]) -> None:
            start.wait()
            got.append(n.address())

        threads = [threading.Thread(target=lease, args=(n, start, got)) for n in nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(got) == len(nodes) and len(set(got)) == len(nodes), sorted(got)
        registry = tmp_path / str(round_) / "registry"
        assert sorted(p.name for p in registry.iterdir()) == sorted(got)  # no drafts left


def test_a_node_keeps_its_address_and_a_gone_nodes_lease_is_taken_over(tmp_path: Path) -> None:
    first = node(tmp_path, "a")
    address = first.address()
    assert first.address() == address
    import shutil

    shutil.rmtree(first.layer_dir)  # its node is gone, the lease file stays
    second = node(tmp_path, "b")
    assert second.address() == address
