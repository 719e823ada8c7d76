"""A team's API server from the CLI: deploy, tokens, login, info, revoke, stop.

The deployed server binds 127.0.0.1 here (only loopback traffic in tests); the admin
and the user each get their own config file and persistent path, as on two machines.
"""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml


def skyhop(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "skyhop.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"skyhop {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYHOP_")}
    env["SKYHOP_LOCAL_NETWORK"] = os.environ["SKYHOP_LOCAL_NETWORK"]  # see tests/conftest.py
    env.update(
        SKYHOP_PERSISTENT_PATH=str(home / "state"),
        SKYHOP_CONFIG=str(home / ".skyhop" / "config.yaml"),
    )
    return env


@pytest.fixture
def deployed(tmp_path: Path, pytestconfig: pytest.Config) -> Iterator[tuple[dict[str, str], str]]:
    """(the admin's environment, the endpoint) of a server started with ``api start --deploy``."""
    import serverproc as helpers

    admin = base_env(tmp_path / "admin")
    port = helpers.free_port()
    endpoint = f"http://127.0.0.1:{port}"
    admin["SKYHOP_API_SERVER_ENDPOINT"] = endpoint
    # The administrator lets token users run local jobs, as an unprivileged user.
    config = Path(admin["SKYHOP_CONFIG"])
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("backends:\n  local:\n    allow_on_deployed_server: true\n    run_as: nobody\n")
    try:
        out = skyhop(
            admin, "api", "start", "--deploy", "--host", "127.0.0.1", "--port", str(port)
        ).stdout
        assert f"Deployed API server is running at {endpoint}" in out
        yield admin, endpoint
    finally:
        skyhop(admin, "api", "stop", check=False)
        helpers.kill_processes_under(tmp_path / "admin")


def create_token(admin: dict[str, str], name: str, *options: str) -> str:
    out = skyhop(admin, "api", "tokens", "create", name, *options).stdout
    match = re.search(r"skyhop_[0-9a-f]{12}\.\S+", out)
    assert match, out
    return match.group(0)


def test_deploy_tokens_login_info_revoke_stop(
    deployed: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    admin, endpoint = deployed
    assert httpx.get(f"{endpoint}/api/health").json()["auth_required"] is True
    token = create_token(admin, "alice")
    listed = skyhop(admin, "api", "tokens", "list").stdout
    assert "alice" in listed and token not in listed and token.split(".", 1)[1] not in listed
    assert re.search(r"^alice\s+user\s", listed, re.M), listed
    out = skyhop(admin, "api", "tokens", "create", "root", "--role", "admin").stdout
    assert "Created an admin token for root" in out
    assert re.search(r"^root\s+admin\s", skyhop(admin, "api", "tokens", "list").stdout, re.M)
    bad = skyhop(admin, "api", "tokens", "create", "x", "--role", "owner", check=False)
    assert bad.returncode == 2 and "owner" in bad.stderr

    user = base_env(tmp_path / "alice")
    config = Path(user["SKYHOP_CONFIG"])
    anonymous = skyhop({**user, "SKYHOP_API_SERVER_ENDPOINT": endpoint}, "status", check=False)
    assert anonymous.returncode == 1
    assert "NotAuthenticatedError" in anonymous.stderr
    assert f"skyhop api login -e {endpoint} --token" in anonymous.stderr

    bad = skyhop(
        user, "api", "login", "-e", endpoint, "--token", "skyhop_000000000000.x", check=False
    )
    assert bad.returncode == 1 and "NotAuthenticatedError" in bad.stderr
    assert not config.exists()

    out = skyhop(user, "api", "login", "-e", endpoint, "--token", token).stdout
    assert "as alice" in out
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert yaml.safe_load(config.read_text())["api_server"] == {
        "endpoint": endpoint,
        "token": token,
    }

    skyhop(user, "status")  # authenticated: succeeds
    info = skyhop(user, "api", "info").stdout
    assert endpoint in info and "User: alice" in info and "token required" in info
    assert ", user)" in info  # the token's role
    assert str(tmp_path / "admin" / "state") in info  # the server's persistent path

    skyhop(admin, "api", "tokens", "revoke", "alice")
    revoked = skyhop(user, "status", check=False)
    assert revoked.returncode == 1 and "invalid or revoked" in revoked.stderr
    assert "not authenticated" in skyhop(user, "api", "info").stdout

    # A user cannot shut the team server down; the admin on its machine can.
    refused = skyhop(user, "api", "stop", check=False)
    assert refused.returncode == 1 and "stop it on its own machine" in refused.stderr
    assert "stopped" in skyhop(admin, "api", "stop").stdout
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{endpoint}/api/health", timeout=2)


def test_the_env_token_is_used_and_login_prompts_for_one(
    deployed: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    admin, endpoint = deployed
    token = create_token(admin, "bob")
    user = {**base_env(tmp_path / "bob"), "SKYHOP_API_SERVER_ENDPOINT": endpoint}
    assert "User: bob" in skyhop({**user, "SKYHOP_API_TOKEN": token}, "api", "info").stdout
    proc = subprocess.run(
        [sys.executable, "-m", "skyhop.cli", "api", "login", "-e", endpoint],
        # Without the endpoint variable: login refuses while it would override the login.
        env={k: v for k, v in user.items() if k != "SKYHOP_API_SERVER_ENDPOINT"},
        input=token + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "as bob" in proc.stdout and token not in proc.stdout


def test_foreground_deploy_runs_in_place(tmp_path: Path, pytestconfig: pytest.Config) -> None:
    import serverproc as helpers

    env = base_env(tmp_path / "fg")
    port = helpers.free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "skyhop.cli",
            "api",
            "start",
            "--deploy",
            "--foreground",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).json()
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        assert health["auth_required"] is True
        assert "pid" not in health and "persistent_path" not in health  # anonymous
        token = create_token(env, "fgadmin", "--role", "admin")
        health = httpx.get(
            f"http://127.0.0.1:{port}/api/health",
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        ).json()
        assert health["pid"] == proc.pid  # the CLI process became the server
        assert health["user"]["role"] == "admin"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert b"No tokens exist yet" in (proc.stderr.read() if proc.stderr else b"")
    finally:
        if proc.poll() is None:
            proc.kill()
        helpers.kill_processes_under(tmp_path / "fg")


def test_a_secret_from_the_cli_reaches_the_job_and_nothing_else(
    deployed: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    """``--secret`` on a user's machine: the job sees it; nothing under the server's
    persistent path, and no output of ``api status``, holds it. Another user's ``-u``
    is refused, an admin's works."""
    admin, endpoint = deployed
    secret = "clis3cr3t" + os.urandom(6).hex()
    user = {**base_env(tmp_path / "carol"), "SKYHOP_API_SERVER_ENDPOINT": endpoint,
            "SKYHOP_API_TOKEN": create_token(admin, "carol")}  # fmt: skip
    out = skyhop(
        user, "launch", "-y", "-c", "sec", "--infra", "local", "--secret", f"MY_SECRET={secret}",
        'echo "rev=$(printf %s "$MY_SECRET" | rev)"',
    ).stdout
    assert f"rev={secret[::-1]}" in out and secret not in out
    assert secret not in skyhop(user, "api", "status", "-a").stdout
    refused = skyhop(user, "status", "-u", check=False)
    assert refused.returncode == 1 and "Only an administrator" in refused.stderr
    root = {**user, "SKYHOP_API_TOKEN": create_token(admin, "boss", "--role", "admin")}
    assert "sec" in skyhop(root, "status", "-u").stdout
    skyhop(root, "down", "-y", "sec")  # an admin may tear down anyone's cluster
    state = Path(admin["SKYHOP_PERSISTENT_PATH"])
    leaked = [
        str(p) for p in state.rglob("*")
        if p.is_file() and not p.is_symlink() and secret.encode() in p.read_bytes()
    ]  # fmt: skip
    assert leaked == []


def test_ssh_on_a_team_server_is_the_owners_as_the_jobs_user_and_nobody_elses(
    deployed: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    """``skyhop ssh`` on a deployed server: the owner gets a shell in the node as the
    user jobs run as (``run_as: nobody``), sandboxed like a job (the server's state is
    hidden); another user is told the cluster does not exist; no token, no session."""
    admin, endpoint = deployed
    state = admin["SKYHOP_PERSISTENT_PATH"]
    owner = {**base_env(tmp_path / "dana"), "SKYHOP_API_SERVER_ENDPOINT": endpoint,
             "SKYHOP_API_TOKEN": create_token(admin, "dana")}  # fmt: skip
    other = {**owner, "SKYHOP_API_TOKEN": create_token(admin, "erin")}
    skyhop(owner, "launch", "-y", "-c", "box", "--infra", "local", "echo up")
    mine = skyhop(owner, "ssh", "box", "--", f'id -un; test -e {state}/skyhop.db || echo hidden')
    assert mine.stdout.split() == ["nobody", "hidden"]
    theirs = skyhop(other, "ssh", "box", "--", "id", check=False)
    assert theirs.returncode == 1 and "Cluster 'box' does not exist" in theirs.stderr
    assert theirs.stdout == ""
    anonymous = {**owner}
    del anonymous["SKYHOP_API_TOKEN"]
    refused = skyhop(anonymous, "ssh", "box", "--", "id", check=False)
    assert refused.returncode == 1 and "NotAuthenticatedError" in refused.stderr
    boss = {**owner, "SKYHOP_API_TOKEN": create_token(admin, "boss", "--role", "admin")}
    assert skyhop(boss, "ssh", "box", "--", "id -un").stdout == "nobody\n"
    skyhop(owner, "down", "-y", "box")
