"""A server that cannot see the client's files: everything the task needs is uploaded.

The API server runs in its own mount namespace (``unshare --mount``) with an empty tmpfs
over the client's directory, as a remote server would be: any path the client names is
invisible to it (and to the local cluster's jobs, which it starts). The client (SDK and
CLI) runs in the client's directory with relative ``workdir: .`` and file mounts of a
single file and a directory.
"""

from __future__ import annotations

import io
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import skyhop as sky


def _unshare_problem() -> str | None:
    try:
        probe = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             "mount -t tmpfs none /mnt"],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if probe.returncode == 0 else probe.stderr.strip() or "unshare failed"


class HiddenClientServer:
    """An API server in a mount namespace where ``hidden`` is an empty tmpfs."""

    def __init__(self, root: Path, hidden: Path) -> None:
        import serverproc

        self.root, self.hidden = root, hidden
        self.port = serverproc.free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "SKYHOP_PERSISTENT_PATH": str(root),
            "SKYHOP_API_SERVER_ENDPOINT": self.endpoint,
            "SKYHOP_CONFIG": str(root / "config.yaml"),
        }
        server = shlex.join([sys.executable, "-m", "skyhop_core.server", "--port", str(self.port)])
        script = f"mount -t tmpfs skyhop-hidden {shlex.quote(str(hidden))} && exec {server}"
        root.mkdir(parents=True)
        self.log_path = root / "server-test.log"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                cwd=str(root),  # the server's own cwd: never what `--workdir .` means
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()}")
            try:
                if httpx.get(self.endpoint + "/api/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("server did not become healthy")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def hidden(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HiddenClientServer, Path]]:
    problem = _unshare_problem()
    if problem:
        pytest.skip(f"cannot hide the client's files from the server (unshare --mount): {problem}")
    import serverproc

    base = tmp_path_factory.mktemp("remote")
    client_dir = base / "client"
    proj = client_dir / "proj"
    (proj / "data").mkdir(parents=True)
    (proj / "train.py").write_text("print('version 1')\n")
    (proj / "run.sh").write_text("#!/bin/sh\necho run.sh ran\n")
    (proj / "run.sh").chmod(0o755)
    (proj / ".gitignore").write_text("*.log\n")
    (proj / "debug.log").write_text("not uploaded\n")
    (proj / "data" / "rows.csv").write_text("a,b\n1,2\n")
    (proj / "config.txt").write_text("lr=0.1\n")
    server = HiddenClientServer(base / "state", client_dir)
    try:
        yield server, proj
    finally:
        server.stop()
        serverproc.kill_processes_under(base / "state")


RUN = (
    "python3 train.py; ./run.sh; cat ../config.txt; cat ../data/rows.csv; "
    "test -e debug.log || echo debug.log-ignored; "
    'echo "client dir entries on the server side: $(ls -A {hidden} | wc -l)"'
)


def test_launch_and_exec_from_a_client_whose_files_the_server_cannot_see(
    hidden: tuple[HiddenClientServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, proj = hidden
    for key in ("SKYHOP_PERSISTENT_PATH", "SKYHOP_API_SERVER_ENDPOINT", "SKYHOP_CONFIG"):
        monkeypatch.setenv(key, server.env[key])
    monkeypatch.chdir(proj)
    task = sky.Task(run=RUN.format(hidden=server.hidden), workdir=".",
                    resources=sky.Resources(infra="local"))  # fmt: skip
    task.set_file_mounts({"~/config.txt": "./config.txt", "~/data": "data"})

    launch_log = io.StringIO()
    result = sky.stream_and_get(sky.launch(task, cluster_name="remote"), output_stream=launch_log)
    logs = io.StringIO()
    assert sky.tail_logs("remote", result["job_id"], output_stream=logs) == 0, logs.getvalue()
    out = logs.getvalue()
    assert "version 1" in out and "run.sh ran" in out and "lr=0.1" in out and "1,2" in out
    assert "debug.log-ignored" in out
    assert "client dir entries on the server side: 0" in out  # the server really is blind
    assert "workdir: upload" in launch_log.getvalue()

    # Edit one file: the exec sends exactly that one blob (the server's own count).
    (proj / "train.py").write_text("print('version 2')\n")
    exec_log = io.StringIO()
    result = sky.stream_and_get(sky.exec(task, cluster_name="remote"), output_stream=exec_log)
    # train.py, run.sh, .gitignore, config.txt, data/rows.csv: debug.log stayed out
    assert "(5 file(s)" in exec_log.getvalue()
    assert "workdir: upload" in exec_log.getvalue() and "; 1 sent)" in exec_log.getvalue()
    logs = io.StringIO()
    assert sky.tail_logs("remote", result["job_id"], output_stream=logs) == 0
    assert "version 2" in logs.getvalue()

    # Unchanged: nothing is sent at all.
    exec_log = io.StringIO()
    sky.stream_and_get(sky.exec(task, cluster_name="remote"), output_stream=exec_log)
    assert "; 0 sent)" in exec_log.getvalue()
    sky.get(sky.down("remote"))


def test_cli_workdir_dot_is_the_clients_directory(
    hidden: tuple[HiddenClientServer, Path],
) -> None:
    server, proj = hidden
    (proj / "train.py").write_text("print('from the CLI')\n")
    proc = subprocess.run(
        [sys.executable, "-m", "skyhop.cli", "launch", "-y", "-c", "remote-cli", "--infra",
         "local", "--workdir", ".", "python3 train.py"],
        env=server.env, cwd=str(proj), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "from the CLI" in proc.stdout
    down = subprocess.run(
        [sys.executable, "-m", "skyhop.cli", "down", "-y", "remote-cli"],
        env=server.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert down.returncode == 0, down.stderr


@pytest.mark.parametrize("loop", ["asyncio", "trio"])
def test_the_async_sdk_uploads_too(
    hidden: tuple[HiddenClientServer, Path], monkeypatch: pytest.MonkeyPatch, loop: str
) -> None:
    import asyncio

    import trio

    from skyhop import aio

    server, proj = hidden
    for key in ("SKYHOP_PERSISTENT_PATH", "SKYHOP_API_SERVER_ENDPOINT", "SKYHOP_CONFIG"):
        monkeypatch.setenv(key, server.env[key])
    monkeypatch.chdir(proj)
    (proj / "train.py").write_text(f"print('async {loop}')\n")
    cluster = f"remote-{loop}"

    async def main() -> str:
        task = sky.Task(run="python3 train.py", workdir=".", resources=sky.Resources(infra="local"))
        result = await aio.launch(task, cluster_name=cluster, output_stream=io.StringIO())
        logs = io.StringIO()
        assert await aio.tail_logs(cluster, result["job_id"], output_stream=logs) == 0
        await aio.down(cluster, output_stream=io.StringIO())
        return logs.getvalue()

    out = asyncio.run(main()) if loop == "asyncio" else trio.run(main)
    assert f"async {loop}" in out
