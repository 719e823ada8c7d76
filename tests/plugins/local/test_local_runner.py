"""LocalCommandRunner: capture, streaming, cancellation and uploads."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import trio

from skyhop_core.agent.procs import pid_alive
from skyhop_core.localrunner import LocalCommandRunner, is_excluded
from skyhop_core.models.records import NodeInfo


def trio_test(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        trio.run(functools.partial(fn, *args, **kwargs))

    return wrapper


def runner_for(home: Path) -> LocalCommandRunner:
    node = NodeInfo(
        rank=0,
        ip="127.0.0.1",
        instance_id="n-0",
        cpus=1,
        memory_gb=1,
        runtime_dir=str(home / ".skyhop_runtime"),
        home=str(home),
    )
    return LocalCommandRunner(node)


@trio_test
async def test_run_captures_output_input_and_exit_code(tmp_path: Path) -> None:
    runner = runner_for(tmp_path)
    done = await runner.run(["sh", "-c", "cat; echo err >&2; exit 3"], input=b"in")
    assert (done.returncode, done.stdout, done.stderr) == (3, b"in", b"err\n")
    done = await runner.run(["sh", "-c", "echo $X; pwd"], env={"X": "1"}, cwd="~")
    assert done.stdout == f"1\n{tmp_path}\n".encode()


@trio_test
async def test_stream_delivers_chunks_and_cancel_kills_the_group(tmp_path: Path) -> None:
    runner = runner_for(tmp_path)
    seen: list[bytes] = []

    async def on_output(data: bytes) -> None:
        seen.append(data)

    code = await runner.stream(["sh", "-c", "echo out; echo err >&2; exit 5"], on_output)
    assert code == 5 and b"".join(seen).split() == [b"out", b"err"]
    pid_file = tmp_path / "child.pid"
    with trio.move_on_after(1):
        await runner.stream(["sh", "-c", f"sleep 300 & echo $! > {pid_file}; wait"], on_output)
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while pid_alive(child):
        assert time.monotonic() < deadline, "the streamed command's child survived cancellation"
        await trio.sleep(0.02)


@trio_test
async def test_upload_copies_contents_and_honours_excludes(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / ".git").mkdir(parents=True)
    (source / ".git" / "HEAD").write_text("ref")
    (source / "pkg" / "build").mkdir(parents=True)
    (source / "pkg" / "build" / "out.o").write_text("o")
    (source / "pkg" / "main.py").write_text("print()")
    (source / "debug.log").write_text("log")
    (source / "keep.log").write_text("keep")
    home = tmp_path / "home"
    runner = runner_for(home)
    await runner.upload(str(source), "~/work", excludes=["*.log", "!keep.log", "build/"])
    copied = sorted(str(p.relative_to(home / "work")) for p in (home / "work").rglob("*"))
    assert copied == ["keep.log", "pkg", "pkg/main.py"]
    await runner.upload(str(source / "pkg" / "main.py"), "~/single/main.py")
    assert (home / "single" / "main.py").read_text() == "print()"


def test_gitignore_style_patterns() -> None:
    assert is_excluded("a/b/x.pyc", False, ["*.pyc"])
    assert is_excluded("data", True, ["data/"]) and not is_excluded("data", False, ["data/"])
    assert is_excluded("docs/out", True, ["/docs/out"]) and not is_excluded(
        "x/docs/out", True, ["/docs/out"]
    )
    assert not is_excluded("a.txt", False, ["*.txt", "!a.txt"])
