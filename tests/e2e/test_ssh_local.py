"""``skyhop ssh`` on the local backend, as a user types it: a command with its output and
exit code, a shell on a real terminal (typeahead, resize, Ctrl+C), a user who goes away
(SIGKILL) and leaves nothing running, and hostile session parameters sent raw.

One server and one cluster for the module; the CLI runs as a subprocess against it.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ptyterm import Terminal
from serverproc import ServerProcess, kill_processes_under

CLI = [sys.executable, "-m", "skyhop.cli"]


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("ssh") / "state").start()
    try:
        sky(server, "launch", "-y", "-c", "dev", "--infra", "local", "echo up")
        yield server
    finally:
        sky(server, "down", "-y", "dev", check=False)
        server.stop()
        kill_processes_under(server.root)


def sky(server: ServerProcess, *args: str, check: bool = True, stdin: str | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:  # fmt: skip
    proc = subprocess.run([*CLI, *args], env=server.env, input=stdin, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip
    if check and proc.returncode != 0:
        raise AssertionError(f"skyhop {' '.join(args)} exited {proc.returncode}:\n"
                             f"{proc.stdout}\n{proc.stderr}")  # fmt: skip
    return proc


def node_home(server: ServerProcess) -> str:
    return str(server.root / "backends" / "local" / "clusters" / "dev" / "node-0")


def test_a_command_runs_in_the_node_home_and_keeps_its_streams_and_exit_code(
    srv: ServerProcess,
) -> None:
    done = sky(srv, "ssh", "dev", "--", 'pwd; echo "home=$HOME"; echo oops >&2; exit 3',
               check=False)  # fmt: skip
    assert done.returncode == 3, done.stderr
    home = Path(node_home(srv)).resolve()
    assert done.stdout.splitlines() == [str(home), f"home={home}"]
    assert done.stderr == "oops\n"
    # Without a command and without a terminal, stdin is the shell's script, as for ssh.
    piped = sky(srv, "ssh", "dev", stdin="read line; echo \"got $line\"\nsecond\n")
    assert piped.stdout == "got second\n"
    # The session's stdin reaches a command's, and its end is the command's EOF.
    counted = sky(srv, "ssh", "dev", "--", "wc", "-l", stdin="a\nb\nc\n")
    assert counted.stdout.strip() == "3"


def test_a_shell_on_a_terminal_keeps_typeahead_follows_resizes_and_takes_ctrl_c(
    srv: ServerProcess,
) -> None:
    term = Terminal([*CLI, "ssh", "dev"], srv.env, rows=33, cols=111)
    try:
        # Typed before the session is even open: nothing is lost (no flush of the input).
        term.write(b"tty; stty size; echo TYPED-$((40+2))\n")
        term.expect(rb"/dev/pts/\d+")
        term.expect(rb"33 111")
        term.expect(rb"TYPED-42")
        term.resize(40, 120)  # the CLI gets SIGWINCH and tells the server
        time.sleep(0.5)
        term.write(b"stty size\n")
        term.expect(rb"40 120")
        term.write(b"sleep 300; echo slept\n")
        time.sleep(1)
        term.write(b"\x03")  # Ctrl+C reaches the node's foreground job, not the CLI
        term.write(b"echo after-$((1+1)); exit 7\n")
        term.expect(rb"after-2")
        assert term.wait() == 7
        assert b"\nslept\r" not in term.seen  # the line's echo has it, never its output
    finally:
        term.close()
    assert "with a terminal" in srv.log() and "ended with exit code 7" in srv.log()


def _sleepers(marker: str) -> list[str]:
    found = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True)
    return found.stdout.split()


@pytest.mark.parametrize("tty", [True, False], ids=["terminal", "pipes"])
def test_a_client_killed_mid_session_leaves_nothing_running(srv: ServerProcess, tty: bool) -> None:
    marker = f"sleep 1000.{int(tty)}{time.monotonic_ns() % 1000}"
    argv = [*CLI, "ssh", "dev"] if tty else [*CLI, "ssh", "dev", "--", marker]
    term = Terminal(argv, srv.env)
    try:
        if tty:
            term.write(marker.encode() + b"\n")
        deadline = time.monotonic() + 30
        while not _sleepers(marker):
            assert time.monotonic() < deadline, term.seen
            time.sleep(0.1)
        term.proc.kill()  # SIGKILL: the connection is cut, nothing is said
        term.proc.wait()
        deadline = time.monotonic() + 10
        while _sleepers(marker):
            assert time.monotonic() < deadline, f"{marker} still runs after its client died"
            time.sleep(0.1)
    finally:
        term.close()
    assert "went away" in srv.log()
    sky(srv, "ssh", "dev", "--", "true")  # the server goes on serving sessions


def test_a_stopped_cluster_a_missing_one_and_a_missing_node_are_named(srv: ServerProcess) -> None:
    missing = sky(srv, "ssh", "nope", "--", "true", check=False)
    assert missing.returncode == 1
    assert "ClusterDoesNotExist: Cluster 'nope' does not exist" in missing.stderr
    node = sky(srv, "ssh", "dev", "--node", "4", "--", "true", check=False)
    assert node.returncode == 1 and "there is no node 4 (skyhop ssh --node)" in node.stderr
    sky(srv, "stop", "-y", "dev")
    try:
        stopped = sky(srv, "ssh", "dev", "--", "true", check=False)
        assert stopped.returncode == 1
        assert "Cluster 'dev' is STOPPED, not UP: Run `skyhop start dev`" in stopped.stderr
    finally:
        sky(srv, "start", "-y", "dev")


# --- hostile session parameters, sent over a raw WebSocket ------------------------------


def raw_session(server: ServerProcess, first: Any) -> dict[str, Any]:
    """Open ``/api/ssh`` by hand, send ``first`` (str: a text frame, bytes: binary) and
    return the server's JSON answer."""
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import (
        AcceptConnection,
        BytesMessage,
        CloseConnection,
        Request,
        TextMessage,
    )

    ws = WSConnection(ConnectionType.CLIENT)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(ws.send(Request(host=f"127.0.0.1:{server.port}", target="/api/ssh")))
        message = TextMessage(data=first) if isinstance(first, str) else BytesMessage(data=first)
        texts: list[str] = []
        while True:
            data = sock.recv(65536)
            assert data, "the server closed the connection without an answer"
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    sock.sendall(ws.send(message))
                elif isinstance(event, TextMessage):
                    texts.append(event.data)
                elif isinstance(event, CloseConnection):
                    assert len(texts) == 1, texts
                    return dict(json.loads(texts[0]))


@pytest.mark.parametrize(
    ("first", "named"),
    [
        ("not json {", "are not JSON"),
        (b'{"cluster": "dev"}', "must be a JSON text frame"),
        ("[1, 2]", "must be a JSON object"),
        ('{"cluster": "dev", "shell": "/bin/sh"}', "field 'shell'"),
        ('{"cluster": 7}', "field 'cluster' is 7"),
        ('{"cluster": "dev", "node": -1}', "field 'node' is -1"),
        ('{"cluster": "dev", "node": "0"}', "field 'node' is '0'"),
        ('{"cluster": "dev", "rows": true}', "field 'rows' is True"),
        ('{"cluster": "dev", "cols": 1e9}', "field 'cols'"),
        ('{"cluster": "dev", "tty": "yes"}', "field 'tty' is 'yes'"),
        ('{"cluster": "dev", "term": "xterm; rm -rf /"}', "field 'term'"),
        ('{"cluster": "dev", "command": ""}', "field 'command'"),
        ('{"cluster": "dev", "command": "' + "x" * 200_000 + '"}', "field 'command'"),
        ('{"cluster": "dev", "command": {"nested": [[[]]]}}', "field 'command'"),
        ('{"cluster": "../../etc"}', "Cluster name '../../etc' is invalid"),
        (json.dumps({"cluster": "dev", "command": "x" * 300_000}), "at most 262144 are accepted"),
    ],
)
def test_hostile_session_parameters_are_refused_naming_the_field(
    srv: ServerProcess, first: Any, named: str
) -> None:
    answer = raw_session(srv, first)
    assert "error" in answer, answer
    assert named in answer["error"]["message"], answer
    assert "exit" not in answer
