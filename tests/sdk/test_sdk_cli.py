"""The CLI through click's CliRunner against the fake server: parsing, output, exit codes."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from skyhop.cli import cli
from skyhop_core import exceptions
from skyhop_core.models.records import CheckResult
from skyhop_core.models.status import JobStatus

ROWS = [
    {
        "infra": "local",
        "instance_type": "local-2cpu",
        "cpus": 2.0,
        "memory_gb": 2.0,
        "gpus": "-",
        "cost": 0.0,
        "chosen": True,
    },
    {
        "infra": "aws (us-east-1)",
        "instance_type": "m6i.large",
        "cpus": 2.0,
        "memory_gb": 8.0,
        "gpus": "-",
        "cost": 0.098,
        "chosen": False,
    },
]


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


@pytest.fixture
def launchable(fake, records):
    """A server where 'dev' does not exist yet and the job prints and succeeds."""
    fake.on("optimize", ROWS)
    fake.on("launch", {"job_id": 1, "handle": records.handle("dev")}, log="Launching on local.\n")
    fake.on("logs", 0, log="hello\n")
    return fake


def test_launch_shows_the_plan_asks_then_tails_the_job(launchable, client):
    result = run("launch", "-c", "dev", "echo", "hello", input="y\n")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Considered resources (1 node):" in out
    assert "INFRA" in out and "COST ($)" in out and "CHOSEN" in out
    assert "Launching a new cluster 'dev'. Proceed? [Y/n]:" in out
    assert "Launching on local." in out and "hello" in out
    (body,) = launchable.bodies("launch")
    assert body["task"]["run"] == "echo hello"
    assert body["cluster_name"] == "dev"
    assert launchable.bodies("logs") == [
        {"cluster_name": "dev", "job_id": 1, "follow": True, "tail": 0}
    ]


def test_considered_resources_table_layout(launchable, client):
    lines = run("launch", "-y", "-c", "dev", "true").output.splitlines()
    start = lines.index("Considered resources (1 node):")
    rule, header, rule2, chosen, other, rule3 = lines[start + 1 : start + 7]
    assert set(rule) == {"-"} and rule == rule2 == rule3
    assert header.split() == [
        "INFRA",
        "INSTANCE",
        "vCPUs",
        "Mem(GB)",
        "GPUS",
        "COST",
        "($)",
        "CHOSEN",
    ]
    assert chosen.split() == ["local", "local-2cpu", "2", "2", "-", "0.00", "✔"]
    assert other.split() == ["aws", "(us-east-1)", "m6i.large", "2", "8", "-", "0.098"]
    assert header.index("vCPUs") == chosen.index(" 2 ") + 1  # columns line up


def test_launch_declined_submits_nothing(launchable, client):
    result = run("launch", "-c", "dev", "true", input="n\n")
    assert result.exit_code == 1
    assert launchable.bodies("launch") == []


def test_launch_exits_with_the_jobs_code(launchable, client):
    launchable.on("logs", 100, log="boom\n")
    assert run("launch", "-y", "-c", "dev", "false").exit_code == 100


def test_launch_on_an_existing_cluster_skips_the_plan(launchable, client):
    launchable.on("optimize", [])
    result = run("launch", "-y", "-c", "dev", "true")
    assert "Considered resources" not in result.output
    assert result.exit_code == 0


def test_launch_options_reach_the_request(launchable, client, tmp_path):
    result = run(
        "launch",
        "-y",
        "-c",
        "dev",
        "--infra",
        "local",
        "--cpus",
        "2+",
        "--memory",
        "4",
        "--gpus",
        "A100:1",
        "--num-nodes",
        "2",
        "--env",
        "A=1",
        "--secret",
        "TOKEN=t",
        "--workdir",
        str(tmp_path),
        "-i",
        "10",
        "--down",
        "--no-setup",
        "--detach-run",
        "python",
        "train.py",
    )
    assert result.exit_code == 0, result.output
    body = launchable.bodies("launch")[0]
    task = body["task"]
    assert task["run"] == "python train.py"
    assert task["num_nodes"] == 2
    assert task["envs"] == {"A": "1"} and task["secrets"] == {"TOKEN": "t"}
    # The workdir was uploaded first; the request names the upload, not the client path.
    assert task["workdir"] == "skyhop-upload://" + "1".rjust(32, "0")
    assert launchable.manifests[0]["kind"] == "dir"
    assert task["resources"] == {
        "infra": "local",
        "cpus": "2+",
        "memory": "4",
        "accelerators": "A100:1",
    }
    assert (body["idle_minutes_to_autostop"], body["down"], body["no_setup"]) == (10, True, True)
    assert launchable.bodies("logs") == []  # --detach-run
    assert "skyhop logs dev 1" in result.output


def test_launch_a_yaml_file_with_overrides(launchable, client, tmp_path):
    yaml_path = tmp_path / "task.yaml"
    yaml_path.write_text("name: t\nenvs:\n  MODEL: null\nrun: echo $MODEL\nnum_nodes: 2\n")
    result = run("launch", "-y", "-c", "dev", "--env", "MODEL=llama", str(yaml_path))
    assert result.exit_code == 0, result.output
    task = launchable.bodies("launch")[0]["task"]
    assert task["envs"] == {"MODEL": "llama"}
    assert task["run"] == "echo $MODEL"
    assert "Considered resources (2 nodes):" in result.output


def test_env_without_value_comes_from_the_shell(launchable, client, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "from-shell")
    assert run("launch", "-y", "-c", "dev", "--secret", "HF_TOKEN", "true").exit_code == 0
    assert launchable.bodies("launch")[0]["task"]["secrets"] == {"HF_TOKEN": "from-shell"}
    monkeypatch.delenv("HF_TOKEN")
    result = run("launch", "-y", "-c", "dev", "--secret", "HF_TOKEN", "true")
    assert result.exit_code == 2 and "HF_TOKEN" in result.output


def test_launch_async_prints_the_request_and_returns(launchable, client):
    result = run("launch", "-y", "-c", "dev", "--async", "true")
    assert result.exit_code == 0
    request_id = next(r for r, v in launchable.requests.items() if v["name"] == "launch")
    assert request_id in result.output
    assert f"skyhop api logs {request_id[:8]}" in result.output
    assert f"skyhop api cancel {request_id[:8]}" in result.output
    gets = [c.url.params["request_id"] for c in launchable.calls if c.url.path == "/api/get"]
    assert request_id not in gets  # only the optimize request was waited on
    assert launchable.bodies("logs") == []


def test_launch_without_a_name_generates_one(launchable, client):
    result = run("launch", "-y", "true")
    name = launchable.bodies("launch")[0]["cluster_name"]
    assert name.startswith("skyhop-")
    assert f"Launching a new cluster '{name}'" not in result.output  # -y: no prompt
    assert launchable.bodies("optimize")[0]["cluster_name"] == name


def test_exec_streams_then_tails(fake, client, records):
    fake.on("exec", {"job_id": 2, "handle": records.handle("dev")})
    fake.on("logs", 0, log="second job\n")
    result = run("exec", "dev", "echo", "second", "job")
    assert result.exit_code == 0
    assert "second job" in result.output
    assert fake.bodies("exec")[0]["task"]["run"] == "echo second job"


def test_exec_async(fake, client):
    result = run("exec", "dev", "--async", "sleep 300")
    assert result.exit_code == 0
    assert "Submitted exec request" in result.output
    assert fake.bodies("exec")[0]["task"]["run"] == "sleep 300"


def test_ctrl_c_prints_exactly_how_to_reattach(launchable, client):
    launchable.interrupt_on.add("/api/stream")
    result = run("launch", "-y", "-c", "dev", "sleep 100")
    assert result.exit_code == 130
    request_id = next(r for r, v in launchable.requests.items() if v["name"] == "launch")
    short = request_id[:8]
    expected = (
        "⚙︎ Request will continue running asynchronously.\n"
        f"├── View logs: skyhop api logs {short}\n"
        f"├── Or, visit: http://127.0.0.1:46590/api/stream?request_id={short}\n"
        f"└── To cancel the request, run: skyhop api cancel {short}\n"
    )
    assert result.stdout.endswith(expected)
    assert "/api/cancel" not in launchable.paths()


def test_ctrl_c_while_getting_a_result(fake, client):
    fake.interrupt_on.add("/api/get")
    result = run("status")
    assert result.exit_code == 130
    assert "Request will continue running asynchronously." in result.stdout


def test_errors_are_one_line_on_stderr(fake, client):
    fake.on("queue", error=exceptions.ClusterDoesNotExist("Cluster 'ghost' does not exist."))
    result = run("queue", "ghost")
    assert result.exit_code == 1
    assert result.stderr == "Error: ClusterDoesNotExist: Cluster 'ghost' does not exist.\n"
    assert "Traceback" not in result.output


def test_debug_shows_the_traceback(fake, client, monkeypatch):
    monkeypatch.setenv("SKYHOP_DEBUG", "1")
    fake.on("queue", error=exceptions.ClusterDoesNotExist("nope"))
    with pytest.raises(exceptions.ClusterDoesNotExist):
        run("queue", "ghost")


def test_status_table(fake, client, records):
    import time

    now = time.time()
    fake.on(
        "status",
        [
            records.cluster("dev", launched_at=now - 600, autostop=30),
            records.cluster("old", status="STOPPED", autostop=5, to_down=True, region="us-east-1"),
        ],
    )
    result = run("status")
    lines = result.output.splitlines()
    assert lines[0].split() == ["NAME", "INFRA", "RESOURCES", "STATUS", "AUTOSTOP", "LAUNCHED"]
    assert lines[1].startswith("dev ") and "UP" in lines[1] and "30m" in lines[1]
    assert "10 mins ago" in lines[1]
    assert "local (us-east-1)" in lines[2] and "STOPPED" in lines[2] and "5m (down)" in lines[2]
    assert fake.bodies("status") == [{"cluster_names": None, "refresh": "NONE", "all_users": False}]


def test_status_says_why_a_cluster_is_not_up(fake, client, records):
    import attrs

    broken = records.cluster("dn", status="INIT")
    broken = attrs.evolve(broken, metadata={"status_reason": "down was interrupted; run it again"})
    busy = attrs.evolve(
        records.cluster("new", status="INIT"),
        metadata={"operation": {"op": "launch", "request_id": "r1", "phase": "syncing files"}},
    )
    fake.on("status", [records.cluster("dev"), broken, busy])
    lines = run("status").output.splitlines()
    assert lines[-2:] == [
        "dn: INIT, down was interrupted; run it again",
        "new: INIT, launch in progress: syncing files",
    ]
    assert len(lines) == 6  # header, three clusters, two notes


def test_status_options_and_empty(fake, client):
    fake.on("status", [])
    result = run("status", "a", "b", "--refresh", "-u")
    assert result.output.strip() == "No existing clusters."
    assert fake.bodies("status") == [
        {"cluster_names": ["a", "b"], "refresh": "FORCE", "all_users": True}
    ]


def test_queue_table(fake, client, records):
    fake.on("queue", [records.job(1), records.job(2, "RUNNING", start_at=None, end_at=None)])
    result = run("queue", "dev", "-s", "-u")
    lines = result.output.splitlines()
    header = [
        "ID",
        "NAME",
        "USER",
        "SUBMITTED",
        "STARTED",
        "DURATION",
        "RESOURCES",
        "STATUS",
        "LOG",
    ]
    assert lines[1].split() == header
    assert "1m 5s" in lines[2] and "SUCCEEDED" in lines[2] and "~/logs/1.log" in lines[2]
    assert "RUNNING" in lines[3]
    assert fake.bodies("queue") == [
        {"cluster_name": "dev", "skip_finished": True, "all_users": True}
    ]


@pytest.mark.parametrize(
    ("code", "text"), [(0, "ok"), (100, "fail"), (101, "..."), (102, ""), (103, "x")]
)
def test_logs_exit_with_the_jobs_code(fake, client, code, text):
    fake.on("logs", code, log=text)
    result = run("logs", "dev", "3", "--no-follow", "--tail", "5")
    assert result.exit_code == code
    assert text in result.output
    assert fake.bodies("logs") == [{"cluster_name": "dev", "job_id": 3, "follow": False, "tail": 5}]


def test_logs_latest_job_by_default(fake, client):
    fake.on("logs", 0)
    run("logs", "dev")
    assert fake.bodies("logs")[0]["job_id"] is None


def test_logs_of_a_missing_job_exit_102(fake, client):
    fake.on("logs", error=exceptions.JobNotFoundError("Job 99 does not exist."))
    result = run("logs", "dev", "99")
    assert result.exit_code == 102
    assert "Job 99 does not exist." in result.stderr


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (JobStatus.SUCCEEDED, 0),
        (JobStatus.FAILED, 100),
        (JobStatus.RUNNING, 101),
        (None, 102),
        (JobStatus.CANCELLED, 103),
    ],
)
def test_logs_status(fake, client, status, code):
    fake.on("job_status", {"3": status})
    result = run("logs", "dev", "3", "--status")
    assert result.exit_code == code
    assert result.output.strip() == f"Job 3: {status.value if status else 'not found'}"
    assert fake.bodies("logs") == []


def test_cancel(fake, client):
    fake.on("cancel", [3, 4])
    result = run("cancel", "dev", "3", "4", input="y\n")
    assert result.exit_code == 0
    assert "Cancelling job(s) 3, 4 on cluster 'dev'. Proceed? [Y/n]:" in result.output
    assert "Cancelled job(s): 3, 4." in result.output
    assert fake.bodies("cancel") == [
        {"cluster_name": "dev", "all": False, "all_users": False, "job_ids": [3, 4]}
    ]


def test_cancel_all_and_usage(fake, client):
    fake.on("cancel", [])
    assert "nothing was cancelled" in run("cancel", "-y", "-a", "-u", "dev").output
    assert fake.bodies("cancel")[0] == {
        "cluster_name": "dev",
        "all": True,
        "all_users": True,
        "job_ids": None,
    }
    assert run("cancel", "dev").exit_code == 2


def test_stop_start_down(fake, client):
    fake.on("stop", None, log="Cluster 'a' is STOPPED.\n")
    result = run("stop", "a", "b", "--purge", input="y\n")
    assert result.exit_code == 0
    assert "Stopping cluster(s) 'a', 'b'. Proceed? [Y/n]:" in result.output
    assert "Cluster 'a' is STOPPED." in result.output
    assert fake.bodies("stop") == [
        {"cluster_name": "a", "purge": True},
        {"cluster_name": "b", "purge": True},
    ]
    assert (
        run("start", "-y", "a", "-i", "5", "--down", "--force", "--retry-until-up").exit_code == 0
    )
    assert fake.bodies("start") == [
        {
            "cluster_name": "a",
            "idle_minutes_to_autostop": 5,
            "retry_until_up": True,
            "down": True,
            "force": True,
        }
    ]
    assert run("down", "-y", "a").exit_code == 0
    assert fake.bodies("down") == [{"cluster_name": "a", "purge": False}]


def test_start_down_needs_idle_minutes(fake, client):
    result = run("start", "-y", "a", "--down")
    assert result.exit_code == 2
    assert fake.bodies("start") == []


def test_one_failing_cluster_of_several(fake, client):
    fake.outcomes["down"] = lambda body: (
        None,
        {"type": "ClusterDoesNotExist", "message": f"{body['cluster_name']} is gone", "args": {}}
        if body["cluster_name"] == "x"
        else None,
        "",
    )
    result = run("down", "-y", "x", "y")
    assert result.exit_code == 1
    assert result.stderr == "Error: ClusterDoesNotExist: x is gone\n"
    assert len(fake.bodies("down")) == 2


def test_async_stop(fake, client):
    result = run("stop", "-y", "--async", "a")
    assert "Submitted stop request" in result.output
    assert "/api/get" not in fake.paths()


def test_autostop(fake, client):
    assert run("autostop", "dev", "-i", "30").exit_code == 0
    assert run("autostop", "dev", "--cancel").exit_code == 0
    assert run("autostop", "dev", "-i", "5", "--down").exit_code == 0
    assert fake.bodies("autostop") == [
        {"cluster_name": "dev", "idle_minutes": 30, "down": False},
        {"cluster_name": "dev", "idle_minutes": -1, "down": False},
        {"cluster_name": "dev", "idle_minutes": 5, "down": True},
    ]
    assert run("autostop", "dev").exit_code == 2


def test_check(fake, client):
    fake.on(
        "check",
        [
            CheckResult("local", True),
            CheckResult(
                "aws", False, reason="boto3 is not installed", fix="pip install 'skyhop[aws]'"
            ),
            CheckResult("ssh", False, reason="no pools", details={"lab": "unreachable"}),
        ],
    )
    out = run("check").output
    assert "  local: enabled ✔" in out
    assert "  aws: disabled — boto3 is not installed" in out
    assert "    Fix: pip install 'skyhop[aws]'" in out
    assert "    lab: unreachable" in out
    assert out.endswith("🎉 Enabled infra 🎉\n  local\n")


def test_api_status_table(fake, client):
    fake.request_records = [
        {
            "request_id": "0d35ffa7-2813-4f3b-95c2-c5ab2238df50",
            "name": "logs",
            "user_name": "user2",
            "user_hash": "h",
            "status": "RUNNING",
            "created_at": 1.0,
            "cluster_name": None,
        },
    ]
    result = run("api", "status", "-a", "-u", "-l", "5")
    lines = result.output.splitlines()
    assert lines[0].split() == ["ID", "User", "Name", "Cluster", "Created", "Status"]
    assert lines[1].split()[:4] == ["0d35ffa7-2813-4f3b-95c2-c5ab2238df50", "user2", "logs", "-"]
    assert lines[1].endswith("RUNNING")


def test_api_logs_cancel_info(fake, client):
    fake.on("launch", {"job_id": None, "handle": None}, log="provisioning...\n")
    from skyhop import sdk

    request_id = sdk.launch({"run": "true"}, "dev")
    assert run("api", "logs", request_id[:8]).output == "provisioning...\n"
    fake.on("api_cancel", [request_id[:8]])
    result = run("api", "cancel", request_id[:8])
    assert fake.bodies("api_cancel")[-1]["request_ids"] == [request_id[:8]]
    assert result.output.strip() == f"Cancelled 1 request(s): {request_id[:8]}"
    assert run("api", "cancel").exit_code == 2
    info = run("api", "info").output
    assert "Using the API server at http://127.0.0.1:46590 (from " in info
    assert "API version 1.0" in info


def test_api_stop(fake, client):
    assert "stopped" in run("api", "stop").output
    assert "No API server is running" in run("api", "stop").output


def test_help_and_version():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in (
        "launch",
        "exec",
        "status",
        "queue",
        "logs",
        "cancel",
        "stop",
        "start",
        "down",
        "autostop",
        "check",
        "api",
    ):
        assert f"  {command}" in result.output
    assert CliRunner().invoke(cli, ["--version"]).output.startswith("skyhop, version ")


HOSTILE = "evil\x1b[2J\x1b]0;pwned\x07\r\u202e"


def test_control_characters_from_the_server_are_escaped_in_tables_and_errors(
    fake, client, records
):
    import attrs

    job = attrs.evolve(records.job(1), job_name=HOSTILE, username="mal\x1b[31mlory")
    fake.on("queue", [job])
    result = run("queue", "dev", "-u")
    assert result.exit_code == 0
    for bad in ("\x1b", "\x07", "\r", "\u202e"):
        assert bad not in result.output
    assert "evil\\x1b[2J\\x1b]0;pwned\\x07\\x0d\\u202e" in result.output
    assert "mal\\x1b[31mlory" in result.output
    fake.on("queue", error=exceptions.ClusterDoesNotExist(f"Cluster {HOSTILE} is gone"))
    result = run("queue", "dev")
    assert result.exit_code == 1
    assert "\x1b" not in result.stderr and "\r" not in result.stderr
    assert result.stderr.startswith("Error: ClusterDoesNotExist: Cluster evil\\x1b[2J")


def test_jobs_launch_reads_env_and_secret_files(fake, client, tmp_path):
    fake.on("jobs_launch", {"job_id": 4})
    (tmp_path / "e.env").write_text("A=from-file\nB=also\n")
    (tmp_path / "s.env").write_text("TOKEN=t0k\n")
    result = run(
        "jobs", "launch", "-y", "-d", "-n", "nightly", "--env-file", str(tmp_path / "e.env"),
        "--env", "B=flag-wins", "--secret-file", str(tmp_path / "s.env"), "echo", "hi",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (body,) = fake.bodies("jobs_launch")
    assert body["task"]["envs"] == {"A": "from-file", "B": "flag-wins"}
    assert body["task"]["secrets"] == {"TOKEN": "t0k"}
