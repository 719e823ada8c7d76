"""What the cross-replica cluster lease costs a lifecycle operation.

``start`` of a cluster that is already UP does nothing but take the cluster's lock: the
trio lock, then the lease row in the state store (one write to take it, one to free it;
see ``skyhop_core.ops.locking``). The baseline is an SDK read (``status``) in the same
run, which takes no lease; the difference is the lease's cost.
"""

from __future__ import annotations

from bench.jobs import BENCH_CLUSTER, ensure_cluster
from bench.report import Figure, Target
from bench.requests import sdk_read
from bench.util import Run, paired, summary


def start_up_cluster() -> None:
    import skyhop as sky

    sky.get(sky.start(BENCH_CLUSTER))


def lease_round_trip(run: Run) -> list[Figure]:
    ensure_cluster(run)
    runs = run.reps(30, 200)
    starts, reads = paired(start_up_cluster, sdk_read, runs, warmup=5)
    s, b = summary(starts, 1000), summary(reads, 1000)
    return [Figure("clusters", "start of an UP cluster (cluster lease)", "ms", s["p50"], s["p99"],
                   "SDK read (status, no lease)", b["p50"], b["p99"], Target("<", 15),
                   f"{runs} sequential sky.get(sky.start(UP cluster)); the lease is a "
                   "take and a free in the state store")]
