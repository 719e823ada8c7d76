"""SkyPilot task files through a real API server on the local backend: the job sees
SkyPilot's variable names, and what cannot run here fails at launch, saying why, before
anything is provisioned."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import pytest

import skyhop as sky
from skyhop import exceptions

CORPUS = Path(__file__).parents[1] / "core" / "models" / "corpus"


def test_a_skypilot_multi_node_file_reads_its_variables(server, tmp_path: Path) -> None:
    path = tmp_path / "torchrun.yaml"
    path.write_text(textwrap.dedent("""\
        num_nodes: 2
        resources: {infra: local}
        setup: echo "setup-rank=$SKYPILOT_SETUP_NODE_RANK"
        run: |
          echo "rank=$SKYPILOT_NODE_RANK of $SKYPILOT_NUM_NODES gpus=$SKYPILOT_NUM_GPUS_PER_NODE"
          echo "head=$(echo "$SKYPILOT_NODE_IPS" | head -n1) same=$([ "$SKYPILOT_TASK_ID" = "$SKYHOP_TASK_ID" ] && echo yes)"
          echo "info-nodes=$(python3 -c 'import json, os; print(json.loads(os.environ["SKYPILOT_CLUSTER_INFO"])["num_nodes"])')"
    """))
    task = sky.Task.from_yaml(str(path))
    job_id, _ = sky.stream_and_get(sky.launch(task, cluster_name="sp"), output_stream=io.StringIO())
    logs = io.StringIO()
    assert sky.tail_logs("sp", job_id, follow=True, output_stream=logs) == 0
    text = logs.getvalue()
    for rank in (0, 1):
        assert f"(setup, rank {rank}) setup-rank={rank}" in text
        assert f"(rank {rank}) rank={rank} of 2 gpus=0" in text
        assert f"(rank {rank}) info-nodes=2" in text
    assert text.count("same=yes") == 2 and "head=" in text
    sky.get(sky.down("sp"))


@pytest.mark.parametrize(("name", "says"), [
    ("pool.yaml", "pool: worker pools are not supported yet"),
    ("event_callback.yaml", "event_callback: job event callbacks are not supported yet"),
])
def test_what_cannot_run_here_fails_at_launch_before_provisioning(server, name, says) -> None:
    task = sky.Task.from_yaml(str(CORPUS / name))
    task.set_resources(sky.Resources(infra="local"))
    request_id = sky.launch(task, cluster_name="refused")  # accepted: the file is valid
    with pytest.raises(exceptions.NotSupportedError, match=says):
        sky.stream_and_get(request_id, output_stream=io.StringIO())
    assert sky.get(sky.status(["refused"])) == []
