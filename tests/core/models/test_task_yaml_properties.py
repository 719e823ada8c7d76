"""Property tests: valid task configs round-trip; garbage never escapes as a crash."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skyhop_core.exceptions import TaskValidationError
from skyhop_core.models import Resources, Task
from skyhop_core.models.resources import YAML_KEYS
from skyhop_core.models.task_schema import check_wire_task
from skyhop_core.models.taskyaml import TASK_KEYS

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
words = st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True)
plain_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)

infra = st.one_of(
    st.just("*"),
    st.sampled_from(["local", "aws", "gcp", "k8s", "kubernetes", "ssh/pool-1"]),
    st.builds(lambda r: f"aws/{r}", words),
    st.builds(lambda r, z: f"gcp/{r}/{z}", words, words),
    st.builds(lambda c: f"k8s/{c}", words),
    st.builds(lambda r: f"*/{r}", words),
    st.builds(lambda r, z: f"*/{r}/{z}", words, words),
)
amount = st.one_of(
    st.integers(1, 512),
    st.floats(0.25, 512, allow_nan=False).map(lambda x: round(x, 2)).filter(lambda x: x > 0),
    st.builds(lambda n, plus: f"{n}{'+' if plus else ''}", st.integers(1, 512), st.booleans()),
)
accelerator = st.one_of(
    st.sampled_from(["H100", "A100", "L4", "T4", "A100-80GB"]),
    st.builds(lambda n, c: f"{n}:{c}", st.sampled_from(["H100", "V100"]), st.integers(1, 8)),
    st.builds(lambda n, c: {n: c}, st.sampled_from(["A10G", "L40S"]), st.integers(1, 8)),
    st.builds(lambda n, c: f"{n}:{c}", st.sampled_from(["T4", "L4"]),
              st.sampled_from([0.5, 0.25, 0.125, 1.5, 0.001])),
)
ports = st.one_of(
    st.integers(1, 65535),
    st.lists(st.one_of(st.integers(1, 65535),
                       st.builds(lambda a, b: f"{a}-{a + b}", st.integers(1, 60000),
                                 st.integers(0, 100))), min_size=1, max_size=3),
)
autostop = st.one_of(
    st.booleans(), st.integers(0, 600), st.sampled_from(["30m", "2h", "1d"]),
    st.fixed_dictionaries({"idle_minutes": st.integers(0, 600)},
                          optional={"down": st.booleans()}),
)
resource_fields = st.fixed_dictionaries(
    {},
    optional={
        "infra": infra, "cpus": amount, "memory": amount, "accelerators": accelerator,
        "instance_type": words, "use_spot": st.booleans(), "disk_size": st.integers(1, 4096),
        "disk_tier": st.sampled_from(["low", "medium", "high", "best"]), "ports": ports,
        "labels": st.dictionaries(words, words, max_size=2), "autostop": autostop,
        "job_recovery": st.sampled_from(["FAILOVER", "eager_next_region", "none"]),
        "image_id": st.one_of(words, st.dictionaries(words, words, min_size=1, max_size=2)),
    },
)


@st.composite
def resources_section(draw: st.DrawFn) -> dict[str, Any]:
    base = draw(resource_fields)
    kind = draw(st.sampled_from(["single", "any_of", "ordered"]))
    if kind != "single":
        entries = draw(st.lists(resource_fields.map(lambda d: {k: v for k, v in d.items()
                                                               if k != "accelerators"}),
                                min_size=1, max_size=3))
        base.pop("accelerators", None)
        base[kind] = entries
    return base


env_values = st.one_of(plain_text, st.integers(-10, 10), st.booleans())
storage_entries = st.fixed_dictionaries(
    {"name": words},
    optional={
        "source": st.one_of(words.map(lambda w: f"./{w}"), words.map(lambda w: f"gs://{w}"),
                            st.lists(words.map(lambda w: f"~/{w}"), min_size=1, max_size=2)),
        "store": st.sampled_from(["s3", "GCS", "local", "r2"]),
        "mode": st.sampled_from(["MOUNT", "copy", "MOUNT_CACHED"]),
        "persistent": st.booleans(),
        "config": st.fixed_dictionaries({"disk_size": st.integers(1, 100)}),
    },
)
git_workdirs = st.fixed_dictionaries(
    {"url": words.map(lambda w: f"https://example.com/{w}.git")}, optional={"ref": words}
)
task_configs = st.fixed_dictionaries(
    {},
    optional={
        "name": words,
        "workdir": st.one_of(st.sampled_from([".", "~/code", "../proj"]), git_workdirs),
        "num_nodes": st.integers(1, 16),
        "resources": resources_section(),
        "envs": st.dictionaries(names, env_values, max_size=3),
        "secrets": st.dictionaries(names, plain_text, max_size=2),
        "file_mounts": st.dictionaries(
            words.map(lambda w: f"/mnt/{w}"),
            st.one_of(words.map(lambda w: f"~/{w}"), words.map(lambda w: f"s3://{w}/x"),
                      storage_entries),
            max_size=3),
        "volumes": st.dictionaries(words.map(lambda w: f"/vol/{w}"), st.one_of(
            words, st.fixed_dictionaries({"size": st.sampled_from(["10Gi", "1Ti"])})),
            max_size=2),
        "inputs": st.dictionaries(words.map(lambda w: f"s3://{w}"),
                                  st.one_of(st.integers(0, 10**6), st.floats(0, 1e6)),
                                  min_size=1, max_size=1),
        "outputs": st.dictionaries(words, st.integers(0, 100), min_size=1, max_size=1),
        "event_callback": plain_text,
        "config": st.dictionaries(words, st.one_of(words, st.integers()), max_size=2),
        "setup": plain_text,
        "run": plain_text,
        "service": st.fixed_dictionaries({"readiness_probe": st.just("/health"),
                                          "replicas": st.integers(1, 3)}),
        "pool": st.fixed_dictionaries({"workers": st.integers(1, 3)}),
    },
).filter(lambda c: not ("service" in c and "pool" in c))


@FAST
@given(task_configs)
def test_valid_configs_round_trip(config: dict[str, Any]) -> None:
    task = Task.from_yaml_config(config, source="gen.yaml")
    again = Task.from_yaml_config(task.to_yaml_config(), source="again")
    assert again == task
    assert again.to_yaml_config() == task.to_yaml_config()
    assert Task.from_yaml_str(task.to_yaml(), "text") == task
    check_wire_task(task.to_yaml_config())  # the canonical form matches the wire schema


@FAST
@given(resource_fields.filter(lambda d: "accelerators" not in d or not isinstance(
    d["accelerators"], dict) or len(d["accelerators"]) == 1))
def test_resources_round_trip(fields: dict[str, Any]) -> None:
    r = Resources(**fields)
    assert Resources.from_yaml_config(r.to_yaml_config()) == r
    assert r.copy() == r and hash(r.copy()) == hash(r)
    assert isinstance(str(r), str)


# --- Garbage -----------------------------------------------------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), plain_text,
                    st.sampled_from(["4+", "H100:8", "aws/us-east-1", "-1", "1e400", "$X/"]))
json_like = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(plain_text, st.integers(), st.sampled_from(YAML_KEYS)),
                        children, max_size=4),
    ),
    max_leaves=12,
)
resources_garbage = st.dictionaries(
    st.sampled_from((*YAML_KEYS, "any_of", "ordered", "bogus")),
    st.one_of(json_like, st.lists(st.dictionaries(st.sampled_from(YAML_KEYS), json_like,
                                                  max_size=3), max_size=3)),
    max_size=5,
)
task_garbage = st.one_of(
    json_like,
    st.dictionaries(st.sampled_from((*TASK_KEYS, "resoures")),
                    st.one_of(json_like, resources_garbage), max_size=6),
)


@st.composite
def mutated_configs(draw: st.DrawFn) -> Any:
    """A valid config with one field (maybe inside resources) replaced by garbage."""
    config = draw(task_configs)
    garbage = draw(json_like)
    if draw(st.booleans()):
        section = config.setdefault("resources", {})
        entries = section.get("any_of") or section.get("ordered")
        target = draw(st.sampled_from(entries)) if entries and draw(st.booleans()) else section
        target[draw(st.sampled_from(YAML_KEYS))] = garbage
    else:
        config[draw(st.sampled_from(TASK_KEYS))] = garbage
    return config


def _task_or_validation_error(build: Any) -> None:
    try:
        result = build()
    except TaskValidationError as err:
        assert str(err) and err.source is not None
        return
    if isinstance(result, Task):
        # A task that parsed must serialise and parse back to itself.
        assert Task.from_yaml_config(result.to_yaml_config()) == result


@FAST
@given(st.one_of(task_garbage, mutated_configs()), st.one_of(st.none(), json_like),
       st.one_of(st.none(), json_like))
def test_garbage_config_gives_task_or_validation_error(config, envs, secrets) -> None:
    _task_or_validation_error(lambda: Task.from_yaml_config(config, "g.yaml", envs, secrets))


@FAST
@given(st.one_of(plain_text, st.text(max_size=200),
                 task_garbage.map(lambda c: yaml.safe_dump(c, allow_unicode=True))
                 .map(lambda t: t.replace("'", "").replace("-", "? "))))
def test_garbage_text_gives_task_or_validation_error(text: str) -> None:
    _task_or_validation_error(lambda: Task.from_yaml_str(text, "g.yaml"))


@FAST
@given(st.dictionaries(st.sampled_from((*YAML_KEYS, "typo")), json_like, max_size=4))
def test_garbage_resources_kwargs_give_resources_or_validation_error(kwargs) -> None:
    for build in (lambda: Resources.from_yaml_config(kwargs),
                  lambda: Resources(infra="aws").copy(**{k: v for k, v in kwargs.items()
                                                         if k not in ("gpus", "spot_recovery")})):
        try:
            r = build()
        except TaskValidationError:
            continue
        assert Resources.from_yaml_config(r.to_yaml_config()) == r
