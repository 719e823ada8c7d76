"""A task YAML is loaded within limits: alias bombs, huge files and duplicate keys are
refused quickly with a message naming the file and the line."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from skyhop_core.exceptions import TaskValidationError
from skyhop_core.models import Task
from skyhop_core.models.yamlsafe import MAX_YAML_BYTES


def billion_laughs(indent: str = "") -> str:
    lines = [f'{indent}a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{indent}{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "text",
    [
        "run: echo hi\nenvs:\n" + billion_laughs("  "),
        "run: echo hi\nconfig:\n" + billion_laughs("  "),  # used to hang in validation
        "run: echo hi\nconfig:\n  nested:\n" + billion_laughs("    "),
    ],
    ids=["envs", "config", "config-nested"],
)
def test_billion_laughs_is_refused_in_well_under_a_second(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    started = time.monotonic()
    with pytest.raises(TaskValidationError) as err:
        Task.from_yaml(str(path))
    assert time.monotonic() - started < 5  # measured: milliseconds; generous for CI
    message = str(err.value)
    assert str(path) in message
    assert "expands to more than 100000 values" in message


def test_an_alias_inside_itself_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("run: echo\nconfig: &loop\n  again: *loop\n")
    with pytest.raises(TaskValidationError, match="alias refers to a node containing it"):
        Task.from_yaml(str(path))


def test_ordinary_anchors_and_merge_keys_still_work(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(
        "envs: &e {A: '1', B: '2'}\n"
        "config:\n  base: &b {x: 1, y: 2}\n  derived: {<<: *b, y: 3}\n  again: *e\n"
        "run: echo $A\n"
    )
    task = Task.from_yaml(str(path))
    assert task.envs == {"A": "1", "B": "2"}
    assert task.config == {"base": {"x": 1, "y": 2}, "derived": {"x": 1, "y": 3},
                           "again": {"A": "1", "B": "2"}}  # fmt: skip


@pytest.mark.parametrize(
    "text,key,lines",
    [
        ("name: a\nrun: echo 1\nnum_nodes: 1\nrun: echo 2\n", "'run'", "lines 2 and 4"),
        ("run: x\nresources:\n  cpus: 2\n  memory: 4\n  cpus: 8\n", "'cpus'", "lines 3 and 5"),
        ("run: x\nenvs: {A: '1', A: '2'}\n", "'A'", "lines 2 and 2"),
    ],
)
def test_a_duplicate_key_names_the_key_and_both_lines(
    tmp_path: Path, text: str, key: str, lines: str
) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    with pytest.raises(TaskValidationError) as err:
        Task.from_yaml(str(path))
    message = str(err.value)
    assert f"duplicate key {key} at {lines}" in message
    assert str(path) in message


def test_a_file_over_the_size_limit_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with open(path, "w") as f:
        f.write("run: |\n")
        line = "  echo " + "x" * 1000 + "\n"
        for _ in range(MAX_YAML_BYTES // len(line) + 10):
            f.write(line)
    with pytest.raises(TaskValidationError, match=f"at most {MAX_YAML_BYTES} are accepted"):
        Task.from_yaml(str(path))


def test_a_three_megabyte_run_loads(tmp_path: Path) -> None:
    path = tmp_path / "long.yaml"
    run = "echo start\n" + "".join(f"# {'y' * 90} {i}\n" for i in range(32_000)) + "echo end\n"
    path.write_text("run: |\n" + "".join("  " + ln + "\n" for ln in run.splitlines()))
    started = time.monotonic()
    assert Task.from_yaml(str(path)).run == run
    assert time.monotonic() - started < 10
