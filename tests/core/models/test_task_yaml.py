"""Parsing a realistic SkyPilot task YAML field by field, and the errors users see."""

from __future__ import annotations

from pathlib import Path

import pytest

from skyhop_core.exceptions import TaskValidationError
from skyhop_core.models import Resources, Task

REALISTIC = """\
name: llama-finetune
workdir: ~/my-task-code
num_nodes: 2

resources:
  cpus: 8+
  memory: 64GB+
  use_spot: true
  disk_size: 256
  disk_tier: medium
  image_id: docker:pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime
  ports:
    - 8080
    - 10022-10040
  labels:
    project: llm
  autostop:
    idle_minutes: 10
    down: true
  job_recovery:
    strategy: FAILOVER
    max_restarts_on_errors: 3
  any_of:
    - infra: aws/us-east-1
      accelerators: H100:8
    - infra: gcp/us-central1
      accelerators: A100-80GB:8
    - infra: k8s/my-context

envs:
  MODEL_SIZE: 13b
  MY_LOCAL_PATH: tmp-workdir
  EPOCHS: 3
  USE_FP16: true
  WANDB_PROJECT: null

secrets:
  HF_TOKEN: null
  WANDB_API_KEY: wandb-secret

file_mounts:
  /checkpoint/${MODEL_SIZE}: ~/${MY_LOCAL_PATH}
  /datasets-s3: s3://my-awesome-dataset
  ~/.netrc: ~/.netrc

setup: |
  pip install -r requirements.txt

run: |
  torchrun --nnodes=$SKYHOP_NUM_NODES train.py --size ${MODEL_SIZE}

service:
  readiness_probe: /v1/models
  replicas: 2
"""


def test_realistic_yaml_field_by_field(tmp_path: Path) -> None:
    path = tmp_path / "task.yaml"
    path.write_text(REALISTIC)
    task = Task.from_yaml(
        str(path),
        env_overrides={"WANDB_PROJECT": "demo", "MODEL_SIZE": "70b"},
        secrets_overrides=[("HF_TOKEN", "hf-123")],
    )
    assert task.name == "llama-finetune"
    assert task.workdir == "~/my-task-code"
    assert task.num_nodes == 2
    assert task.envs == {"MODEL_SIZE": "70b", "MY_LOCAL_PATH": "tmp-workdir", "EPOCHS": "3",
                         "USE_FP16": "True", "WANDB_PROJECT": "demo"}
    assert task.secrets == {"HF_TOKEN": "hf-123", "WANDB_API_KEY": "wandb-secret"}
    # Envs (after overrides) are substituted into file_mounts; setup/run are left alone.
    assert task.file_mounts == {"/checkpoint/70b": "~/tmp-workdir",
                                "/datasets-s3": "s3://my-awesome-dataset",
                                "~/.netrc": "~/.netrc"}
    assert task.setup == "pip install -r requirements.txt\n"
    assert "${MODEL_SIZE}" in task.run
    assert task.service == {"readiness_probe": "/v1/models", "replicas": 2}
    assert task.resources_ordered is False
    assert [r.infra for r in task.resources] == ["aws/us-east-1", "gcp/us-central1",
                                                 "kubernetes/my-context"]
    first = task.resources[0]
    assert first.accelerators == {"H100": 8}
    assert task.resources[1].accelerators == {"A100-80GB": 8}
    assert task.resources[2].accelerators is None
    for r in task.resources:  # the base fields apply to every candidate
        assert r.cpus_requirement() == (8.0, True)
        assert r.memory_requirement() == (64.0, True)
        assert r.use_spot and r.disk_size == 256 and r.disk_tier == "medium"
        assert r.image_id == "docker:pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime"
        assert r.ports == ("8080", "10022-10040")
        assert r.labels == {"project": "llm"}
        assert r.autostop_config() == (10, True)
        assert r.job_recovery == {"strategy": "FAILOVER", "max_restarts_on_errors": 3}
    assert Task.from_yaml_str(task.to_yaml(), "again") == task


def test_ordered_and_accelerator_lists() -> None:
    task = Task.from_yaml_str("resources:\n  ordered:\n    - infra: aws/us-east-1\n"
                              "    - infra: aws/us-west-2\n")
    assert task.resources_ordered
    assert [r.region for r in task.resources] == ["us-east-1", "us-west-2"]
    listed = Task.from_yaml_str("resources:\n  accelerators: [L4:1, H100:1, A100:1]\n")
    assert listed.resources_ordered
    assert [r.accelerators for r in listed.resources] == [{"L4": 1}, {"H100": 1}, {"A100": 1}]
    as_set = Task.from_yaml_str("resources:\n  accelerators: {L4:1, H100:1}\n")
    assert not as_set.resources_ordered
    assert {next(iter(r.accelerators)) for r in as_set.resources} == {"L4", "H100"}


def test_legacy_location_and_aliases() -> None:
    task = Task.from_yaml_str("resources:\n  cloud: aws\n  region: us-east-1\n  gpus: V100:4\n"
                              "  spot_recovery: EAGER_NEXT_REGION\n")
    (r,) = task.resources
    assert r.infra == "aws/us-east-1" and r.accelerators == {"V100": 4}
    assert r.job_recovery == "EAGER_NEXT_REGION"
    regions = Task.from_yaml_str("resources:\n  infra: aws\n  any_of:\n"
                                 "    - region: us-east-1\n    - region: us-west-2\n")
    assert [r.infra for r in regions.resources] == ["aws/us-east-1", "aws/us-west-2"]


def test_env_interpolation_rules() -> None:
    task = Task.from_yaml_str(
        "envs: {DIR: data}\nworkdir: ~/$DIR\nfile_mounts:\n  /mnt/$DIR: ./${DIR}\n"
        "  /x/${UNKNOWN}: /y\nsecrets: {S: hidden}\n"
    )
    assert task.workdir == "~/data"
    assert task.file_mounts == {"/mnt/data": "./data", "/x/${UNKNOWN}": "/y"}


def test_empty_yaml_is_default_task() -> None:
    task = Task.from_yaml_str("")
    assert task == Task()
    assert task.resources == (Resources(),) and task.num_nodes == 1


ERRORS = [
    # yaml, field, value repr in message, suggestion
    ("resoures:\n  cpus: 4\n", "resoures", "{'cpus': 4}", "resources"),
    ("nmae: x\n", "nmae", "'x'", "name"),
    ("resources:\n  cpu: 4\n", "resources.cpu", "4", "cpus"),
    ("resources:\n  acclerators: H100\n", "resources.acclerators", "'H100'", "accelerators"),
    ("resources:\n  any_of:\n    - infra: aws\n    - infar: gcp\n", "resources.any_of[1].infar",
     "'gcp'", "infra"),
    ("resources:\n  cpus: lots\n", "resources.cpus", "'lots'", None),
    ("resources:\n  memory: 12XB\n", "resources.memory", "'12XB'", None),
    ("resources:\n  any_of:\n    - accelerators: H100:8\n    - accelerators: H100:eight\n",
     "resources.any_of[1].accelerators", "'H100:eight'", None),
    ("resources:\n  ordered:\n    - infra: aws/us-east-1/a/b\n", "resources.ordered[0].infra",
     "'aws/us-east-1/a/b'", None),
    ("resources:\n  infra: aws\n  cloud: gcp\n", "resources.cloud", "'gcp'", None),
    ("resources:\n  ports: [8080, 99999]\n", "resources.ports[1]", "99999", None),
    ("resources:\n  use_spot: maybe\n", "resources.use_spot", "'maybe'", None),
    ("resources:\n  autostop:\n    idle_minute: 5\n", "resources.autostop.idle_minute", "5",
     "idle_minutes"),
    ("resources:\n  disk_tier: fastest\n", "resources.disk_tier", "'fastest'", None),
    ("resources:\n  any_of: {infra: aws}\n", "resources.any_of", "{'infra': 'aws'}", None),
    ("resources: 4\n", "resources", "4", None),
    ("num_nodes: 0\n", "num_nodes", "0", None),
    ("num_nodes: two\n", "num_nodes", "'two'", None),
    ("envs:\n  1BAD: x\n", "envs['1BAD']", "'1BAD'", None),
    ("envs:\n  A: [1, 2]\n", "envs.A", "[1, 2]", None),
    ("envs: [a, b]\n", "envs[0]", "'a'", None),
    ("file_mounts:\n  /remote/: /local\n", "file_mounts['/remote/']", "'/remote/'", None),
    ("file_mounts:\n  /remote: /local/\n", "file_mounts['/remote']", "'/local/'", None),
    ("file_mounts:\n  /remote:\n    source: s3://b\n    mode: MOUNTED\n",
     "file_mounts['/remote'].mode", "'MOUNTED'", None),
    ("file_mounts:\n  /remote:\n    mode: COPY\n", "file_mounts['/remote']", "{}", None),
    ("file_mounts:\n  /remote:\n    source: s3://b\n    stor: s3\n",
     "file_mounts['/remote'].stor", "'s3'", "store"),
    ("file_mounts:\n  /remote:\n    name: a/b\n", "file_mounts['/remote'].name", "'a/b'", None),
    ("inputs: {s3://a: 1, s3://b: 2}\n", "inputs", "{'s3://a': 1, 's3://b': 2}", None),
    ("workdir: {ref: main}\n", "workdir.url", "None", None),
    ("service: {replicas: 1}\npool: {workers: 1}\n", "pool", "{'workers': 1}", None),
    ("run: [echo, hi]\n", "run", "['echo', 'hi']", None),
    ("service: /v1/models\n", "service", "'/v1/models'", None),
]


@pytest.mark.parametrize(("text", "field", "value", "suggestion"), ERRORS)
def test_errors_name_file_field_value_and_fix(text, field, value, suggestion) -> None:
    with pytest.raises(TaskValidationError) as info:
        Task.from_yaml_str(text, "task.yaml")
    err = info.value
    message = str(err)
    assert message.startswith("task.yaml: ")
    assert f"'{field}'" in message
    assert value in message
    assert "expected" in message
    assert (err.source, err.field) == ("task.yaml", field)
    assert err.suggestion == suggestion
    if suggestion:
        assert f"Did you mean '{suggestion}'?" in message


def test_missing_env_and_secret_say_how_to_pass_them() -> None:
    with pytest.raises(TaskValidationError) as info:
        Task.from_yaml_str("envs:\n  WANDB_PROJECT: null\n", "t.yaml")
    assert "--env WANDB_PROJECT=VALUE" in str(info.value)
    assert info.value.field == "envs.WANDB_PROJECT"
    with pytest.raises(TaskValidationError) as info:
        Task.from_yaml_str("secrets:\n  HF_TOKEN: null\n", "t.yaml")
    assert "--secret HF_TOKEN=VALUE" in str(info.value)


def test_bad_secret_value_is_not_echoed() -> None:
    with pytest.raises(TaskValidationError) as info:
        Task.from_yaml_str("secrets:\n  TOKEN: {nested: s3cr3t}\n", "t.yaml")
    assert "s3cr3t" not in str(info.value)


def test_yaml_syntax_error_has_line_number() -> None:
    with pytest.raises(TaskValidationError) as info:
        Task.from_yaml_str("name: ok\nrun: [echo\nsetup: x\n", "broken.yaml")
    message = str(info.value)
    assert message.startswith("broken.yaml: YAML syntax error at line ")
    assert "line 3" in message


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_top_level_must_be_a_mapping(text) -> None:
    with pytest.raises(TaskValidationError, match="expected a mapping of task fields"):
        Task.from_yaml_str(text, "t.yaml")


def test_several_documents_and_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(TaskValidationError, match="2 YAML documents"):
        Task.from_yaml_str("name: a\n---\nname: b\n")
    with pytest.raises(TaskValidationError, match="cannot read"):
        Task.from_yaml(str(tmp_path / "missing.yaml"))
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(TaskValidationError):
        Task.from_yaml(str(binary))
