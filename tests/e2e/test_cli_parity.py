"""SkyPilot's command lines, run against a real server: the flags and commands scripts use.

One server for the module (launching is the slow part); each test names its own
clusters. Every command runs as a user types it: ``python -m skyhop.cli ...``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from clirun import sky
from serverproc import ServerProcess, kill_processes_under


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("parity")
    server = ServerProcess(root / "state").start()
    yield server
    try:
        server.stop()
    except Exception:
        server.kill()
    kill_processes_under(server.root)


def wait_for(srv: ServerProcess, cluster: str, job_id: int, status: str = "SUCCEEDED") -> None:
    deadline = time.monotonic() + 60
    while True:
        out = sky(srv, "logs", cluster, str(job_id), "--status", check=False).stdout
        if status in out:
            return
        assert time.monotonic() < deadline, out
        time.sleep(0.3)


@pytest.fixture(scope="module")
def up(srv: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Cluster ``par`` launched with SkyPilot's short flags; job 1 printed its env."""
    d = tmp_path_factory.mktemp("task")
    (d / "task.yaml").write_text(
        yaml.safe_dump(
            {
                "envs": {"FROM_YAML": "y", "FILLED": None},
                "secrets": {"TOKEN": None},
                "run": 'echo "env=$FROM_FILE,$FROM_FLAG,$FROM_YAML,$FILLED token=$TOKEN"',
            }
        )
    )
    (d / "vars.env").write_text("# a dotenv file\nFROM_FILE=file\nexport FILLED='from file'\n")
    (d / "secrets.env").write_text("TOKEN=s3cret\n")
    out = sky(
        srv, "launch", "-y", "-c", "par", "-d", "-n", "mytask", "--ports", "8080",
        "--env-file", str(d / "vars.env"), "--env", "FROM_FLAG=flag",
        "--secret-file", str(d / "secrets.env"), str(d / "task.yaml"),
    ).stdout  # fmt: skip
    assert "Job ID: 1" in out and "skyhop logs par 1" in out  # -d: hints, no streaming
    wait_for(srv, "par", 1)
    return "par"


def test_launch_d_n_ports_env_file_and_secret_file(srv: ServerProcess, up: str) -> None:
    log = sky(srv, "logs", up, "1").stdout
    assert "env=file,flag,y,from file token=s3cret" in log
    queue = sky(srv, "queue", up).stdout
    assert "mytask" in queue
    assert sky(srv, "status", up, "--ip").stdout.strip().count(".") == 3
    endpoint = sky(srv, "status", up, "--endpoint", "8080").stdout.strip()
    assert endpoint.rsplit(":", 1)[1].isdigit()
    assert f"8080: {endpoint}" in sky(srv, "status", up, "--endpoints").stdout
    bad = sky(srv, "status", up, "--endpoint", "9999", check=False)
    assert bad.returncode == 2 and "Port 9999 is not exposed" in bad.stderr
    assert sky(srv, "status", "--ip", check=False).returncode == 2


def test_env_file_with_a_valueless_key_needs_the_shell(srv: ServerProcess, up: str, tmp_path: Path) -> None:
    (tmp_path / "bad.env").write_text("NOT_SET_ANYWHERE_XYZ\n")
    proc = sky(srv, "exec", up, "--env-file", str(tmp_path / "bad.env"), "true", check=False)
    assert proc.returncode == 2
    assert "NOT_SET_ANYWHERE_XYZ" in proc.stderr and "bad.env" in proc.stderr


def test_exec_takes_the_cluster_as_c_or_first_argument(srv: ServerProcess, up: str) -> None:
    out = sky(srv, "exec", "-c", up, "-n", "by-option", "echo via-option").stdout
    assert "via-option" in out
    out = sky(srv, "exec", up, "-d", "echo via-positional").stdout
    job_id = int(out.split("Job ID: ")[1].split()[0])
    wait_for(srv, up, job_id)
    assert "by-option" in sky(srv, "queue", up).stdout
    assert "via-positional" in sky(srv, "logs", up, str(job_id)).stdout


def test_logs_of_several_jobs_status_and_sync_down(srv: ServerProcess, up: str) -> None:
    a = int(sky(srv, "exec", up, "-d", "echo first-of-two").stdout.split("Job ID: ")[1].split()[0])
    b = int(sky(srv, "exec", up, "-d", "echo second-of-two; exit 3").stdout.split("Job ID: ")[1].split()[0])
    wait_for(srv, up, b, "FAILED")
    both = sky(srv, "logs", up, str(a), str(b), check=False)
    assert both.returncode == 100  # the worst of the two
    out = both.stdout
    assert out.index(f"=== Job {a} ===") < out.index("first-of-two") < out.index(f"=== Job {b} ===")
    assert "second-of-two" in out
    status = sky(srv, "logs", up, str(a), str(b), "--status", check=False)
    assert f"Job {a}: SUCCEEDED" in status.stdout and f"Job {b}: FAILED" in status.stdout
    assert status.returncode == 100
    synced = sky(srv, "logs", up, str(a), str(b), "--sync-down", check=False).stdout
    paths = dict(
        line.split(" logs: ") for line in synced.splitlines() if line.startswith("Job ")
    )
    assert set(paths) == {f"Job {a}", f"Job {b}"}
    assert "first-of-two" in Path(paths[f"Job {a}"]).read_text()
    assert "second-of-two" in Path(paths[f"Job {b}"]).read_text()


def test_queue_a_u_and_every_cluster(srv: ServerProcess, up: str) -> None:
    for flag in ("-a", "-u"):
        assert "mytask" in sky(srv, "queue", flag, up).stdout
    every = sky(srv, "queue").stdout
    assert f"Job queue of cluster {up}" in every


def test_status_a_shows_everything(srv: ServerProcess, up: str) -> None:
    out = sky(srv, "status", "-a").stdout
    header = out.splitlines()[0]
    for column in ("NODES", "HEAD_IP", "$/HR"):
        assert column in header


def test_stop_a_and_down_a_ask_unless_y(srv: ServerProcess) -> None:
    sky(srv, "launch", "-y", "-c", "pa1", "true")
    sky(srv, "launch", "-y", "-c", "pa2", "true")
    refused = sky(srv, "stop", "-a", stdin="n\n", check=False)
    assert refused.returncode == 1 and "Proceed?" in refused.stdout
    assert "STOPPED" not in sky(srv, "status", "pa1", "pa2").stdout
    assert sky(srv, "stop", "-a", "pa1", check=False).returncode == 2  # names or -a
    sky(srv, "stop", "-a", "-y")
    out = sky(srv, "status", "pa1", "pa2").stdout
    assert out.count("STOPPED") == 2
    sky(srv, "down", "-a", stdin="y\n")
    assert "No existing clusters" in sky(srv, "status").stdout
    assert "No existing clusters to stop" in sky(srv, "stop", "-a", "-y").stdout


def test_global_config_overrides_for_one_command(srv: ServerProcess, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("persistent_path_note: kept\n")
    env = {**srv.env, "SKYHOP_CONFIG": str(config)}
    env.pop("SKYHOP_API_SERVER_ENDPOINT")
    out = sky(srv, "--config", f"api_server.endpoint={srv.endpoint}", "api", "info", env=env).stdout
    assert f"Using the API server at {srv.endpoint} (from config {config} with --config" in out
    override = tmp_path / "override.yaml"
    override.write_text(yaml.safe_dump({"api_server": {"endpoint": srv.endpoint}}))
    assert "No existing clusters" in sky(srv, "--config", str(override), "status", env=env).stdout
    assert config.read_text() == "persistent_path_note: kept\n"  # the file is not changed
    bad = sky(srv, "--config", "nonsense", "status", env=env, check=False)
    assert bad.returncode == 2 and "neither an existing YAML file nor key=value" in bad.stderr


def test_api_status_limit_and_recent_finished(srv: ServerProcess) -> None:
    sky(srv, "check")
    idle = sky(srv, "api", "status").stdout
    assert "No unfinished requests. Recent finished ones" in idle and "check" in idle
    limited = sky(srv, "api", "status", "-a", "-l", "1").stdout.splitlines()
    assert len(limited) == 2  # the header and one request
    every = sky(srv, "api", "status", "-a", "-l", "all").stdout.splitlines()
    assert len(every) > 2
    assert sky(srv, "api", "status", "-l", "zero", check=False).returncode == 2


def test_api_info_login_and_logout(srv: ServerProcess, tmp_path: Path) -> None:
    info = sky(srv, "api", "info").stdout
    assert "(from env SKYHOP_API_SERVER_ENDPOINT)" in info
    refused = sky(srv, "api", "login", "-e", srv.endpoint, check=False)
    assert refused.returncode == 2 and "unset SKYHOP_API_SERVER_ENDPOINT" in refused.stderr
    config = tmp_path / "config.yaml"
    env = {**srv.env, "SKYHOP_CONFIG": str(config)}
    env.pop("SKYHOP_API_SERVER_ENDPOINT")
    config.write_text("other: 1\n")
    sky(srv, "api", "login", "-e", srv.endpoint, env=env)
    assert yaml.safe_load(config.read_text())["api_server"]["endpoint"] == srv.endpoint
    assert f"from config {config}" in sky(srv, "api", "info", env=env).stdout
    out = sky(srv, "api", "logout", env=env).stdout
    assert f"Logged out of {srv.endpoint}" in out
    assert yaml.safe_load(config.read_text()) == {"other": 1}
    assert "Not logged in" in sky(srv, "api", "logout", env=env).stdout


def test_api_stream_without_a_request_id_follows_the_latest(srv: ServerProcess) -> None:
    sky(srv, "down", "-y", "no-such-cluster-for-stream", check=False)
    headers = {"X-Skyhop-User": "someone", "X-Skyhop-User-Hash": "0000beef"}
    none = httpx.get(f"{srv.endpoint}/api/stream", headers=headers, timeout=10)
    assert none.status_code == 404  # that user has no request
    from skyhop.client import identity

    name, user_hash = identity()
    mine = {"X-Skyhop-User": name, "X-Skyhop-User-Hash": user_hash}
    response = httpx.get(f"{srv.endpoint}/api/stream", headers=mine, timeout=30)
    assert response.status_code == 200
    assert "no-such-cluster-for-stream" in response.text


def test_api_cancel_returns_a_request_whose_result_lists_the_cancelled(srv: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("SKYHOP_PERSISTENT_PATH", "SKYHOP_API_SERVER_ENDPOINT", "SKYHOP_CONFIG"):
        monkeypatch.setenv(key, srv.env[key])
    import skyhop as sky_sdk
    import skyhop.sdk

    sky_sdk.get(sky_sdk.launch(sky_sdk.Task(run=None), cluster_name="pcancel"))
    job_id = sky_sdk.get(sky_sdk.exec(sky_sdk.Task(run="sleep 30"), cluster_name="pcancel"))[0]
    slow = sky_sdk.sdk.submit_logs("pcancel", job_id, follow=True)  # runs while the job does
    waiting = sky_sdk.job_status("pcancel", [job_id])  # a cheap request, finished soon
    sky_sdk.get(waiting)
    cancel_id = sky_sdk.api_cancel(slow)
    assert isinstance(cancel_id, str) and cancel_id != slow
    assert sky_sdk.get(cancel_id) == [slow]
    assert sky_sdk.get(sky_sdk.api_cancel(waiting)) == []  # finished: nothing to cancel
    out = sky(srv, "api", "cancel", "-a").stdout
    assert "nothing was cancelled" in out or "Cancelled" in out
    sky(srv, "down", "-y", "pcancel")


def test_setup_writes_bashrc_and_run_sees_it(srv: ServerProcess, tmp_path: Path) -> None:
    """Jobs run in an interactive bash, as SkyPilot's: ``~/.bashrc`` (even behind the
    usual "not interactive: return" guard) applies, and ``!`` is not history expansion."""
    task = tmp_path / "rc.yaml"
    task.write_text(
        yaml.safe_dump(
            {
                "num_nodes": 2,
                "setup": "printf 'case $- in *i*) ;; *) return;; esac\\nexport FROM_RC=yes-$SKYHOP_NODE_RANK\\n' >> ~/.bashrc",
                "run": 'echo "rc=$FROM_RC bang!"; echo to-stderr >&2',
            }
        )
    )
    out = sky(srv, "launch", "-y", "-c", "prc", str(task)).stdout.splitlines()
    assert "(rank 0) rc=yes-0 bang!" in out and "(rank 1) rc=yes-1 bang!" in out
    assert "(rank 1) to-stderr" in out
    assert not any("job control" in line or "terminal process group" in line for line in out)
    sky(srv, "down", "-y", "prc")


def test_a_job_running_when_its_cluster_stops_is_failed_driver(srv: ServerProcess) -> None:
    sky(srv, "launch", "-y", "-c", "pstop", "-d", "sleep 300")
    wait_for(srv, "pstop", 1, "RUNNING")
    sky(srv, "stop", "-y", "pstop")
    sky(srv, "start", "-y", "pstop")
    status = sky(srv, "logs", "pstop", "1", "--status", check=False)
    assert "Job 1: FAILED_DRIVER" in status.stdout and status.returncode == 100
    log = sky(srv, "logs", "pstop", "1", check=False).stdout
    assert "the cluster was stopped while this job ran" in log
    sky(srv, "down", "-y", "pstop")


def test_a_run_over_the_argument_limit_runs(srv: ServerProcess, tmp_path: Path) -> None:
    """A 200 KiB ``run`` (one argv string may hold 128 KiB) through the CLI and server."""
    filler = "".join(f": {'x' * 90} {i}\n" for i in range(2_200))
    task = tmp_path / "long.yaml"
    task.write_text(yaml.safe_dump({"run": "echo long-begin\n" + filler + "echo long-end\n"}))
    assert task.stat().st_size > 200_000
    out = sky(srv, "launch", "-y", "-c", "plong", str(task)).stdout.splitlines()
    assert "long-begin" in out and "long-end" in out
    sky(srv, "down", "-y", "plong")


def test_logs_follow_survives_a_proxy_that_drops_connections(srv: ServerProcess) -> None:
    """``skyhop logs`` through a proxy that cuts every connection after 0.8 s: the stream
    reconnects each time and resumes at its offset (no line lost or repeated)."""
    from dropproxy import DroppingProxy

    sky(srv, "launch", "-y", "-c", "pdrop", "true")
    out = sky(srv, "exec", "pdrop", "-d", "for i in $(seq 1 24); do echo tick-$i; sleep 0.15; done")
    job_id = out.stdout.split("Job ID: ")[1].split()[0]
    with DroppingProxy(srv.port, lifetime=0.8) as proxy:
        env = {**srv.env, "SKYHOP_API_SERVER_ENDPOINT": f"http://127.0.0.1:{proxy.port}"}
        logs = sky(srv, "logs", "pdrop", job_id, env=env)
    ticks = [line for line in logs.stdout.splitlines() if line.startswith("tick-")]
    assert ticks == [f"tick-{i}" for i in range(1, 25)]
    assert proxy.dropped >= 3, proxy.dropped
    sky(srv, "down", "-y", "pdrop")


def _wait_status(srv: ServerProcess, cluster: str, wanted: str, timeout: float = 90) -> set[str]:
    """Poll ``skyhop status CLUSTER`` until it shows ``wanted``; returns every status seen."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while True:
        out = sky(srv, "status", cluster).stdout
        seen |= {s for s in ("UP", "INIT", "AUTOSTOPPING", "STOPPED") if f" {s} " in out}
        if wanted in seen:
            return seen
        assert time.monotonic() < deadline, (wanted, out)
        time.sleep(0.2)


def _request_log(srv: ServerProcess, name: str, cluster: str) -> str:
    rows = sky(srv, "api", "status", "-a", "-l", "all").stdout.splitlines()
    request_id = next(r.split()[0] for r in rows if f" {name} " in r and f" {cluster} " in r)
    return sky(srv, "api", "logs", request_id).stdout


def test_autostop_hook_runs_while_autostopping(srv: ServerProcess, tmp_path: Path) -> None:
    task = tmp_path / "hook.yaml"
    hook = {"idle_minutes": 0, "hook": "echo hook-says-hi; sleep 3", "hook_timeout": 30}
    task.write_text(yaml.safe_dump({"resources": {"autostop": hook}, "run": "true"}))
    sky(srv, "launch", "-y", "-c", "phook", str(task))
    seen = _wait_status(srv, "phook", "STOPPED")
    assert "AUTOSTOPPING" in seen
    log = _request_log(srv, "stop", "phook")
    assert "hook-says-hi" in log and "✔ The autostop hook finished." in log
    sky(srv, "down", "-y", "phook")


def test_autostop_hook_timeout_still_stops(srv: ServerProcess, tmp_path: Path) -> None:
    task = tmp_path / "slowhook.yaml"
    hook = {"idle_minutes": 0, "down": True, "hook": "sleep 60", "hook_timeout": 1}
    task.write_text(yaml.safe_dump({"resources": {"autostop": hook}, "run": "true"}))
    sky(srv, "launch", "-y", "-c", "pslow", str(task))
    deadline = time.monotonic() + 60
    while "pslow" in sky(srv, "status").stdout:  # autodown: the cluster goes away
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert "did not finish within 1 s" in _request_log(srv, "down", "pslow")


def test_autostop_wait_for_none_stops_a_busy_cluster(srv: ServerProcess) -> None:
    sky(srv, "launch", "-y", "-c", "pnone", "-d", "sleep 300")
    wait_for(srv, "pnone", 1, "RUNNING")
    sky(srv, "autostop", "pnone", "-i", "0", "--wait-for", "jobs", "-y")
    time.sleep(2)  # several autostop passes: a running job keeps it UP
    assert " UP " in sky(srv, "status", "pnone").stdout
    sky(srv, "autostop", "pnone", "-i", "0", "--wait-for", "none", "-y")
    _wait_status(srv, "pnone", "STOPPED")  # (AUTOSTOPPING is brief without a hook)
    bad = sky(srv, "autostop", "pnone", "-i", "1", "--wait-for", "sometimes", check=False)
    assert bad.returncode == 2
    sky(srv, "down", "-y", "pnone")


def test_a_launch_on_an_autostopping_cluster_waits_then_starts_it(srv: ServerProcess, tmp_path: Path) -> None:
    task = tmp_path / "hook.yaml"
    hook = {"idle_minutes": 0, "hook": "sleep 4", "hook_timeout": 30}
    task.write_text(yaml.safe_dump({"resources": {"autostop": hook}, "run": "true"}))
    sky(srv, "launch", "-y", "-c", "pwait", str(task))
    _wait_status(srv, "pwait", "AUTOSTOPPING")
    out = sky(srv, "launch", "-y", "-c", "pwait", "echo after-autostop").stdout
    assert "⚙︎ Starting cluster 'pwait'." in out  # it waited for the stop to finish
    assert "after-autostop" in out
    sky(srv, "down", "-y", "pwait")
