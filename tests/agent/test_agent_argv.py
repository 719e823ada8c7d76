"""The agent CLI's fast argv parser agrees with its argparse parser on every command line
it accepts, and leaves everything else to argparse (which rejects it with exit code 2)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skyhop_core.agent import cli

WORDS = ["--follow", "--tail", "--job-ids", "--all", "--user-hash", "--skip-finished",
         "3", "17", "x", "-1", "--bogus"]


@given(
    command=st.sampled_from(cli.NAMES),
    rest=st.lists(st.sampled_from(WORDS), max_size=5),
)
def test_fast_parse_matches_argparse(command: str, rest: list[str]) -> None:
    argv = ["--root", "/tmp/rt", command, *rest]
    fast = cli._fast_parse(argv)
    try:
        slow = vars(cli._parser().parse_args(argv))
    except SystemExit:
        slow = None
    if fast is not None:
        assert slow is not None, f"fast parser accepted what argparse rejects: {argv}"
        assert vars(fast) == slow


@pytest.mark.parametrize("argv", [
    ["--root", "/r", "tail", "5", "--follow", "--tail", "10"],
    ["--root", "/r", "cancel", "--job-ids", "1", "2", "--user-hash", "ab"],
    ["--root", "/r", "status", "--job-ids"],
    ["--root", "/r", "queue", "--skip-finished"],
    ["--root", "/r", "submit"],
])
def test_the_runners_command_lines_take_the_fast_path(argv: list[str]) -> None:
    fast = cli._fast_parse(argv)
    assert fast is not None
    assert vars(fast) == vars(cli._parser().parse_args(argv))


def test_a_bad_command_line_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--root", "/r", "tail", "--tail", "many"])
    assert exc.value.code == 2
    assert "--tail" in capsys.readouterr().err


@pytest.mark.parametrize("name,ok", [
    ("PATH", True), ("_X1", True), ("a", True), ("1A", False), ("A-B", False),
    ("", False), ("É", False), ("A B", False),
])
def test_env_names(name: str, ok: bool) -> None:
    assert cli.valid_env_name(name) is ok
