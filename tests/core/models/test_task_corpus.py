"""A corpus of task files in SkyPilot's format (tests/core/models/corpus/, one per field
and form of its YAML reference): every file parses, dumps and parses back to the same
task, matches the wire schema, and either may run here or is refused at launch with a
message naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from skyhop_core.exceptions import NotSupportedError
from skyhop_core.models import Task
from skyhop_core.models.storage import Storage, StorageMode
from skyhop_core.models.task_schema import check_wire_task
from skyhop_core.ops.taskcheck import check_runnable

CORPUS = Path(__file__).parent / "corpus"
FILES = sorted(p.name for p in CORPUS.glob("*.yaml"))
OVERRIDES = {
    "env_required.yaml": ({"WANDB_API_KEY": "k"}, {"HF_TOKEN": "hf"}),
    "docker_image.yaml": (None, {"SKYPILOT_DOCKER_PASSWORD": "pw"}),
}
#: What launch says about the files it cannot run yet (the rest pass the check).
REFUSED = {
    "pool.yaml": "pool: worker pools are not supported yet",
    "event_callback.yaml": "event_callback: job event callbacks are not supported yet",
    "volumes_via_file_mounts.yaml": "file_mounts['/mnt/path1']: a volume (store: volume)",
}


def load(name: str) -> Task:
    envs, secrets = OVERRIDES.get(name, (None, None))
    return Task.from_yaml(str(CORPUS / name), envs, secrets)


def test_the_corpus_covers_the_reference() -> None:
    assert len(FILES) >= 30


@pytest.mark.parametrize("name", FILES)
def test_each_file_parses_and_round_trips(name: str) -> None:
    task = load(name)
    config = task.to_yaml_config()
    again = Task.from_yaml_config(config, source="again")
    assert again == task
    assert again.to_yaml_config() == config
    assert Task.from_yaml_str(task.to_yaml(), "text") == task
    check_wire_task(config)  # the canonical form is what the server accepts


@pytest.mark.parametrize("name", FILES)
def test_launch_runs_it_or_says_precisely_why_not(name: str) -> None:
    task = load(name)
    if name not in REFUSED:
        check_runnable(task)
        return
    with pytest.raises(NotSupportedError) as info:
        check_runnable(task)
    assert REFUSED[name] in str(info.value)


def test_storage_entries_become_storage_mounts_with_envs_filled_in() -> None:
    task = load("storage_mounts.yaml")
    assert set(task.file_mounts) == set()
    mounts = task.storage_mounts
    assert mounts["/datasets-storage"] == Storage(
        name="sky-dataset", source="/local/path/datasets", stores="s3"
    )
    assert mounts["/outputs/exp-7"] == Storage(
        name="team-datasets-out", mode=StorageMode.MOUNT_CACHED, persistent=False
    )
    assert mounts["/copied"].source_store == "gcs" and mounts["/copied"].mode is StorageMode.COPY
    assert mounts["/several"].source == ("./a", "./b")
    assert mounts["/models"].mode is StorageMode.COPY and mounts["/models"].stores == ("gcs",)


def test_bucket_uris_stay_plain_file_mounts() -> None:
    task = load("bucket_uris.yaml")
    assert task.file_mounts["/s3data"] == "s3://my-awesome-dataset"
    assert task.storage_mounts == {}


def test_accelerator_forms_become_candidates() -> None:
    def accs(name: str) -> list[dict]:
        return [r.accelerators for r in load(name).resources]

    assert accs("accelerators_list.yaml") == [{"A100": 1}, {"V100": 1}, {"L4": 1}]
    assert load("accelerators_list.yaml").resources_ordered
    assert sorted(map(str, accs("accelerators_set.yaml"))) == ["{'A100': 1}", "{'V100': 1}"]
    assert len(accs("accelerators_quoted_set.yaml")) == 3
    assert sorted(map(str, accs("accelerators_dict_of_types.yaml"))) == [
        "{'L4': 4}", "{'L40S': 4}"]
    assert sorted(map(str, accs("accelerators_counts_dict.yaml"))) == [
        "{'A10G': 1}", "{'L40S': 2}"]
    assert accs("fractional_gpu.yaml") == [{"T4": 0.5}]
    assert accs("fractional_gpu_mapping.yaml") == [{"A100": 0.25}]
    assert load("fractional_gpu.yaml").to_yaml_config()["resources"]["accelerators"] == "T4:0.5"


def test_other_sections_are_kept() -> None:
    assert load("git_workdir.yaml").workdir == {
        "url": "https://github.com/example-org/example-repo.git", "ref": "v1.2.0"}
    assert load("git_workdir_no_ref.yaml").workdir == {
        "url": "https://github.com/example-org/example-repo.git"}
    assert load("volumes.yaml").volumes["/mnt/ckpt"] == "shared-ckpt"
    io = load("inputs_outputs.yaml")
    assert io.inputs == {"s3://my-input-bucket/images": 125}
    assert io.outputs == {"s3://my-output-bucket/embeddings": 0.5}
    assert load("pool.yaml").pool == {"workers": 3}
    assert load("service.yaml").service["replica_policy"]["max_replicas"] == 3
    assert load("infra_forms.yaml").resources[2].infra == "*/us-west-2"
    assert load("infra_forms.yaml").resources[2].region == "us-west-2"
    assert load("full_reference.yaml").file_mounts["/checkpoint/13b"] == "~/tmp-workdir"


def test_envs_are_filled_into_the_service_section_and_storage_source_lists() -> None:
    task = load("service_envs.yaml")
    probe = task.service["readiness_probe"]
    assert probe["path"] == "/v1/models"
    assert probe["post_data"] == {"model": "meta-llama/Llama-3.1-8B", "prompt": "$NOT_AN_ENV"}
    assert probe["headers"] == {"Authorization": "Bearer meta-llama/Llama-3.1-8B"}
    assert task.service["replicas"] == 2  # numbers stay numbers
    assert task.run == "vllm serve $MODEL_NAME --port 8080"  # the node's shell expands it
    storage = task.storage_mounts["/mounted"]
    assert storage.name == "models-llama3"
    assert storage.source == ("./" + "/v1/models", "./plain")
