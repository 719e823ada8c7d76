"""The CLI end to end on the local backend, as a user types it, against a real server."""

from __future__ import annotations

import signal
import subprocess
import sys
import time


def skyhop(server, *args: str, timeout: float = 120, check: bool = True):
    proc = subprocess.run(
        [sys.executable, "-m", "skyhop.cli", *args],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"skyhop {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_launch_hello_then_the_cluster_commands(server):
    out = skyhop(server, "launch", "-y", "-c", "dev", "echo hello").stdout
    assert "hello" in out
    status = skyhop(server, "status").stdout
    assert "dev" in status and "UP" in status

    skyhop(server, "exec", "dev", "echo second job")
    queue = skyhop(server, "queue", "dev").stdout
    assert "SUCCEEDED" in queue

    logs = skyhop(server, "logs", "dev", "2")
    assert "second job" in logs.stdout
    assert logs.returncode == 0
    assert skyhop(server, "logs", "dev", "99", "--no-follow", check=False).returncode == 102

    skyhop(server, "exec", "dev", "--async", "sleep 300")
    deadline = time.monotonic() + 20
    while "RUNNING" not in skyhop(server, "queue", "dev").stdout:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    skyhop(server, "cancel", "-y", "dev", "3")
    deadline = time.monotonic() + 20
    while "CANCELLED" not in skyhop(server, "queue", "dev").stdout:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert skyhop(server, "logs", "dev", "3", "--status", check=False).returncode == 103

    skyhop(server, "stop", "-y", "dev")
    assert "STOPPED" in skyhop(server, "status", "dev").stdout
    skyhop(server, "start", "-y", "dev")
    assert "UP" in skyhop(server, "status", "dev").stdout
    skyhop(server, "autostop", "dev", "-i", "30")
    assert "30" in skyhop(server, "status", "dev").stdout
    skyhop(server, "down", "-y", "dev")
    assert "dev" not in skyhop(server, "status").stdout


def test_errors_are_one_clear_line(server):
    proc = skyhop(server, "queue", "ghost", check=False)
    assert proc.returncode != 0
    assert "ClusterDoesNotExist" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = skyhop(server, "launch", "-y", "-c", "bad name", "true", check=False)
    assert proc.returncode != 0
    assert "InvalidClusterNameError" in proc.stderr


def test_each_error_is_printed_once(server):
    for args in (
        ("down", "-y", "ghost"),
        ("exec", "ghost", "true"),
        ("logs", "ghost", "1"),
        ("launch", "-y", "--infra", "nosuch", "true"),
    ):
        proc = skyhop(server, *args, check=False)
        both = proc.stdout + proc.stderr
        assert proc.returncode != 0, args
        assert [ln.startswith("Error: ") for ln in both.splitlines()].count(True) == 1, (args, both)
        assert proc.stderr.startswith("Error: "), (args, proc.stderr)
    # The backend's own error type crosses the wire, not a wrapped SkyhopError.
    assert "Error: UnknownBackendError: No backend named 'nosuch'" in proc.stderr


def test_api_logs_and_status_tell_how_a_request_ended(server):
    assert "skyhop api status -a" in skyhop(server, "api", "status").stdout
    skyhop(server, "down", "-y", "ghost", check=False)
    failed = next(
        line.split()[0]
        for line in skyhop(server, "api", "status", "-a").stdout.splitlines()
        if " down " in line and "FAILED" in line
    )
    proc = skyhop(server, "api", "logs", failed, check=False)
    assert proc.returncode == 1
    assert "ClusterDoesNotExist" in proc.stdout
    skyhop(server, "check")
    succeeded = next(
        line.split()[0]
        for line in skyhop(server, "api", "status", "-a").stdout.splitlines()
        if " check " in line and "SUCCEEDED" in line
    )
    assert skyhop(server, "api", "logs", succeeded).returncode == 0


def test_user_strings_never_reach_a_shell_unquoted(server, tmp_path):
    marker = tmp_path / "pwned"
    proc = skyhop(server, "launch", "-y", "-c", f"x;touch {marker}", "true", check=False)
    assert proc.returncode != 0
    assert not marker.exists()


def test_check_lists_every_backend(server):
    out = skyhop(server, "check").stdout
    assert "local: enabled" in out
    for name in ("aws", "gcp", "kubernetes", "ssh"):
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(f"{name}:"))
        assert "disabled" in line and len(line.split("—", 1)[1].strip()) > 10, line
    import importlib.util

    if importlib.util.find_spec("lightkube") is None:
        assert "pip install 'skyhop[kubernetes]'" in out


def test_ctrl_c_leaves_the_request_running(server):
    proc = subprocess.Popen(
        [sys.executable, "-m", "skyhop.cli", "launch", "-y", "-c", "bg", "sleep 2; echo finished-late"],
        env=server.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert "Request will continue running asynchronously" in out
    assert "skyhop api cancel" in out
    deadline = time.monotonic() + 60
    while "bg" not in skyhop(server, "status").stdout:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    skyhop(server, "down", "-y", "bg")
