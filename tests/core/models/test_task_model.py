"""Task built from Python: fluent setters, validation, overrides, secrets kept hidden."""

from __future__ import annotations

import pytest

from skyhop_core.exceptions import TaskValidationError
from skyhop_core.models import Resources, Task


def test_defaults() -> None:
    task = Task()
    assert task.name is None and task.run is None and task.num_nodes == 1
    assert task.envs == {} and task.secrets == {} and task.file_mounts == {}
    assert task.resources == (Resources(),) and task.resources_ordered is False
    assert task.service is None


def test_fluent_setters_chain_and_validate() -> None:
    task = (
        Task("train", run="python train.py", num_nodes=2)
        .set_resources(Resources(infra="local", cpus="2+"))
        .set_file_mounts({"/data": "./data"})
        .update_file_mounts({"~/.cfg": "~/cfg"})
        .update_envs({"A": 1})
        .update_envs([("B", True)])
        .update_secrets({"TOKEN": "s3cret"})
        .set_service({"readiness_probe": "/health", "replicas": 1})
    )
    assert task.envs == {"A": "1", "B": "True"}
    assert task.file_mounts == {"/data": "./data", "~/.cfg": "~/cfg"}
    assert task.resources[0].infra == "local"
    with pytest.raises(TaskValidationError):
        task.set_file_mounts({"/data/": "./data"})
    with pytest.raises(TaskValidationError):
        task.update_envs({"BAD-NAME": "x"})
    with pytest.raises(TaskValidationError):
        task.num_nodes = 0
    with pytest.raises(TaskValidationError):
        Task(num_nodes=True)  # type: ignore[arg-type]
    with pytest.raises(TaskValidationError):
        Task(run=42.5j)  # type: ignore[arg-type]
    with pytest.raises(TaskValidationError):
        Task(envs={"A": None})


def test_set_resources_list_set_and_override() -> None:
    a, b = Resources(infra="aws", accelerators="H100"), Resources(infra="gcp", accelerators="A100")
    task = Task().set_resources([a, b])
    assert task.resources == (a, b) and task.resources_ordered
    task.set_resources({a, b})
    assert set(task.resources) == {a, b} and not task.resources_ordered
    task.set_resources([a, a])
    assert task.resources == (a,) and not task.resources_ordered
    task.set_resources([a, b]).set_resources_override({"cpus": "4+", "use_spot": None})
    assert [r.cpus for r in task.resources] == ["4+", "4+"] and task.resources_ordered
    assert task.resources[0].accelerators == {"H100": 1}
    with pytest.raises(TaskValidationError):
        task.set_resources([])
    with pytest.raises(TaskValidationError):
        task.set_resources(["aws"])  # type: ignore[list-item]
    with pytest.raises(TaskValidationError) as info:
        task.set_resources_override({"gpus_typo": 1})
    assert info.value.field == "gpus_typo"


def test_callable_run_is_kept_but_not_serialised() -> None:
    def per_node(rank: int, ips: list[str]) -> str | None:
        return f"echo {rank}" if rank else None

    task = Task(run=per_node)
    assert task.run is per_node
    assert "run" not in task.to_yaml_config()
    assert "command generator" in repr(task)


def test_secret_values_never_shown() -> None:
    task = Task("t", run="echo hi", secrets={"HF_TOKEN": "hf_supersecret"}, envs={"A": "b"})
    assert "hf_supersecret" not in repr(task)
    assert "hf_supersecret" not in str(task)
    assert "HF_TOKEN" in repr(task)
    assert "hf_supersecret" not in task.to_yaml(redact_secrets=True)
    # The wire form carries the value: the server needs it to run the job.
    assert task.to_yaml_config()["secrets"] == {"HF_TOKEN": "hf_supersecret"}


def test_overrides_add_and_replace() -> None:
    task = Task.from_yaml_config({"envs": {"A": "1"}}, env_overrides={"A": "2", "NEW": "3"},
                                 secrets_overrides={"S": "x"})
    assert task.envs == {"A": "2", "NEW": "3"} and task.secrets == {"S": "x"}
    with pytest.raises(TaskValidationError):
        Task.from_yaml_config({}, env_overrides={"1A": "x"})


def test_to_yaml_config_is_canonical() -> None:
    task = Task("n", run="echo", num_nodes=3, workdir=".",
                resources=[Resources(infra="aws"), Resources(infra="gcp")])
    assert task.to_yaml_config() == {
        "name": "n", "workdir": ".", "num_nodes": 3,
        "resources": {"ordered": [{"infra": "aws"}, {"infra": "gcp"}]},
        "run": "echo",
    }
    assert Task().to_yaml_config() == {}
    assert Task.from_yaml_config(task.to_yaml_config()) == task
