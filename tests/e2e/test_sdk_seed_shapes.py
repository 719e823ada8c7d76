"""Every cluster and cluster-job function of the seed SDK reference
(``shared/seeds/003_*``) returns what its Returns / Request Returns say, against a real
server. Where skyhop deliberately returns more, the README says so (``cancel``'s result
lists the cancelled jobs; ``download_logs`` is synchronous)."""

from __future__ import annotations

import io
import json

import skyhop as sky
from skyhop import sdk
from skyhop_core.models import Resources
from skyhop_core.models.records import ClusterHandle

STATUS_KEYS = {
    "name", "launched_at", "handle", "last_use", "status", "autostop", "to_down",
    "metadata", "user_hash", "user_name", "resources_str", "labels", "cost",
}  # fmt: skip
QUEUE_KEYS = {
    "job_id", "job_name", "username", "user_hash", "submitted_at", "start_at", "end_at",
    "resources", "status", "log_path",
}  # fmt: skip


def _is_request_id(value: object) -> bool:
    return isinstance(value, str) and len(value) >= 32


def test_seed_returns_and_request_returns(server) -> None:
    task = sky.Task(run="echo $SKYHOP_CLUSTER_INFO", resources=sky.Resources(labels={"team": "ml"}))
    request_id = sky.launch(task, cluster_name="seed")
    assert _is_request_id(request_id)
    job_id, handle = sky.get(request_id)
    assert isinstance(job_id, int) and isinstance(handle, ClusterHandle)
    assert handle.launched_nodes == 1 and handle.head_ip == handle.node_ips[0]
    assert isinstance(handle.launched_resources, Resources)
    assert handle.launched_resources.cloud == "local"
    out = io.StringIO()
    assert sky.tail_logs("seed", job_id, follow=True, output_stream=out) == 0
    info = json.loads(out.getvalue().splitlines()[0])
    assert info["cloud"] == "local" and info["cluster_name"] == "seed"

    records = sky.get(sky.status(["seed"]))
    assert isinstance(records, list) and set(records[0]) >= STATUS_KEYS
    assert records[0]["labels"] == {"team": "ml"} and records[0]["cost"] == 0.0
    assert sky.get(sky.status(["no-such"])) == []  # a missing cluster is omitted

    exec_id = sky.exec(sky.Task(run="true"), cluster_name="seed")
    assert _is_request_id(exec_id)
    second, exec_handle = sky.get(exec_id)
    assert second == job_id + 1 and exec_handle.cluster_name == "seed"

    jobs = sky.get(sky.queue("seed"))
    assert isinstance(jobs, list) and set(jobs[0]) >= QUEUE_KEYS
    statuses = sky.get(sky.job_status("seed", [job_id, 999]))
    assert statuses[str(job_id)] is sky.JobStatus.SUCCEEDED and statuses["999"] is None

    paths = sdk.download_logs("seed", [job_id])
    assert set(paths) == {str(job_id)}

    assert sky.get(sky.autostop("seed", 30)) is None
    assert sky.get(sky.stop("seed")) is None
    assert sky.get(sky.start("seed")) is None
    assert sky.get(sky.down("seed")) is None

    cancel_id = sky.api_cancel(all=True)
    assert _is_request_id(cancel_id) and sky.get(cancel_id) == []
    assert all(hasattr(r, "request_id") for r in sky.api_status(all_status=True))
    assert {"endpoint", "user", "version"} <= set(sky.api_info())
