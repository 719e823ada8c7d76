"""The SDK functions: what each sends, and how results and errors come back."""

from __future__ import annotations

import io

import pytest

import skyhop as sky
from skyhop import sdk
from skyhop_core import exceptions

TASK = {"run": "echo hi", "envs": {"A": "1"}, "secrets": {"TOKEN": "s3cret"}}


def test_launch_sends_every_parameter_with_defaults(fake, client):
    request_id = sky.launch(TASK, cluster_name="dev")
    assert isinstance(request_id, str)
    assert fake.bodies("launch") == [
        {
            "task": TASK,
            "cluster_name": "dev",
            "retry_until_up": False,
            "idle_minutes_to_autostop": None,
            "dryrun": False,
            "down": False,
            "optimize_target": "COST",
            "no_setup": False,
            "fast": False,
        }
    ]


def test_launch_options_travel(fake, client):
    sky.launch(
        TASK,
        "c",
        retry_until_up=True,
        idle_minutes_to_autostop=5,
        dryrun=True,
        down=True,
        optimize_target=sky.OptimizeTarget.TIME,
        no_setup=True,
        fast=True,
    )
    body = fake.bodies("launch")[0]
    assert body["optimize_target"] == "TIME"
    assert body["idle_minutes_to_autostop"] == 5
    assert all(body[k] for k in ("retry_until_up", "dryrun", "down", "no_setup", "fast"))


@pytest.mark.parametrize(
    ("call", "operation", "body"),
    [
        (
            lambda: sky.exec(TASK, "dev"),
            "exec",
            {"task": TASK, "cluster_name": "dev", "dryrun": False, "down": False},
        ),
        (lambda: sky.stop("dev", purge=True), "stop", {"cluster_name": "dev", "purge": True}),
        (lambda: sky.down("dev"), "down", {"cluster_name": "dev", "purge": False}),
        (
            lambda: sky.start("dev", 10, down=True, force=True),
            "start",
            {
                "cluster_name": "dev",
                "idle_minutes_to_autostop": 10,
                "retry_until_up": False,
                "down": True,
                "force": True,
            },
        ),
        (
            lambda: sky.status(("a", "b"), refresh=sky.StatusRefreshMode.FORCE, all_users=True),
            "status",
            {"cluster_names": ["a", "b"], "refresh": "FORCE", "all_users": True},
        ),
        (
            lambda: sky.status(),
            "status",
            {"cluster_names": None, "refresh": "NONE", "all_users": False},
        ),
        (
            lambda: sky.autostop("dev", -1, down=True),
            "autostop",
            {"cluster_name": "dev", "idle_minutes": -1, "down": True},
        ),
        (
            lambda: sky.queue("dev", skip_finished=True),
            "queue",
            {"cluster_name": "dev", "skip_finished": True, "all_users": False},
        ),
        (
            lambda: sky.job_status("dev", [1, 2]),
            "job_status",
            {"cluster_name": "dev", "job_ids": [1, 2]},
        ),
        (
            lambda: sky.cancel("dev", job_ids=[3]),
            "cancel",
            {"cluster_name": "dev", "all": False, "all_users": False, "job_ids": [3]},
        ),
        (lambda: sky.optimize(TASK, "dev"), "optimize", {"task": TASK, "cluster_name": "dev", "optimize_target": "COST"}),
        (lambda: sky.check(), "check", {}),
    ],
)
def test_each_function_posts_its_operation(fake, client, call, operation, body):
    request_id = call()
    assert fake.bodies(operation) == [body]
    assert fake.requests[request_id]["name"] == operation
    assert "/api/v1/" + operation in fake.paths()


def test_start_down_without_idle_minutes_is_refused_before_sending(fake, client):
    with pytest.raises(ValueError, match="idle_minutes_to_autostop"):
        sky.start("dev", down=True)
    assert fake.submitted == []


def test_get_decodes_launch_result(fake, client, records):
    fake.on("launch", {"job_id": 1, "handle": records.handle("dev", nodes=2)})
    result = sky.get(sky.launch(TASK, "dev"))
    assert result["job_id"] == 1
    assert result["handle"].cluster_name == "dev"
    assert result["handle"].node_ips == ["10.0.0.1", "10.0.0.2"]


def test_status_and_queue_results_are_dicts_with_enums(fake, client, records):
    fake.on("status", [records.cluster("dev")])
    fake.on("queue", [records.job(7, "RUNNING")])
    clusters = sky.get(sky.status())
    assert clusters[0]["name"] == "dev"
    assert clusters[0]["status"] == sky.ClusterStatus.UP
    assert clusters[0]["handle"].head.ip == "10.0.0.1"
    jobs = sky.get(sky.queue("dev"))
    assert jobs[0]["job_id"] == 7
    assert jobs[0]["status"] == sky.JobStatus.RUNNING


def test_job_status_result_maps_string_ids(fake, client):
    fake.on("job_status", {"1": sky.JobStatus.FAILED, "2": None})
    assert sky.get(sky.job_status("dev", [1, 2])) == {"1": sky.JobStatus.FAILED, "2": None}


@pytest.mark.parametrize(
    "error",
    [
        exceptions.ClusterDoesNotExist("Cluster 'x' does not exist."),
        exceptions.ClusterNotUpError("not up", cluster_status="STOPPED"),
        exceptions.ResourcesUnavailableError("none", failover_history=["aws: quota"]),
        exceptions.RequestCancelledError("cancelled"),
        ValueError("bad value"),
    ],
)
def test_get_raises_the_requests_error_type(fake, client, error):
    fake.on("stop", error=error)
    with pytest.raises(type(error)) as info:
        sky.get(sky.stop("x"))
    assert str(info.value) == str(error)
    if isinstance(error, exceptions.SkyhopError):
        assert info.value.wire_args() == error.wire_args()


def test_unknown_error_type_keeps_its_name(fake, client):
    fake.outcomes["stop"] = (None, {"type": "WeirdPluginError", "message": "boom", "args": {}}, "")
    with pytest.raises(exceptions.SkyhopError, match="WeirdPluginError: boom"):
        sky.get(sky.stop("x"))


def test_request_id_prefixes_pass_through(fake, client):
    request_id = sky.stop("dev")
    assert sky.get(request_id[:8]) is None
    assert fake.calls[-1].url.params["request_id"] == request_id[:8]


def test_stream_and_get_writes_the_log_then_returns_the_result(fake, client):
    fake.on("cancel", [3], log="Cancelled job(s): 3.\n")
    out = io.StringIO()
    assert sky.stream_and_get(sky.cancel("dev", job_ids=[3]), output_stream=out) == [3]
    assert out.getvalue() == "Cancelled job(s): 3.\n"
    stream_call = next(c for c in fake.calls if c.url.path == "/api/stream")
    assert stream_call.url.params["follow"] == "true"


def test_stream_and_get_passes_tail_and_follow(fake, client):
    request_id = sky.check()
    sky.stream_and_get(request_id, tail=5, follow=False, output_stream=io.StringIO())
    params = next(c for c in fake.calls if c.url.path == "/api/stream").url.params
    assert params["tail"] == "5" and params["follow"] == "false"


def test_stream_and_get_of_a_local_log_file(tmp_path, client):
    log = tmp_path / "job.log"
    log.write_text("one\ntwo\nthree\n")
    out = io.StringIO()
    assert sky.stream_and_get(log_path=str(log), tail=2, output_stream=out) is None
    assert out.getvalue() == "two\nthree\n"


def test_tail_logs_streams_the_job_output_and_returns_the_exit_code(fake, client):
    fake.on("logs", 100, log="step 1\nTraceback: boom\n")
    out = io.StringIO()
    assert sky.tail_logs("dev", 4, follow=False, tail=10, output_stream=out) == 100
    assert "Traceback: boom" in out.getvalue()
    assert fake.bodies("logs") == [
        {"cluster_name": "dev", "job_id": 4, "follow": False, "tail": 10}
    ]


def test_download_logs_is_synchronous(fake, client):
    fake.on("download_logs", {"1": "/p/logs/dev/job-1.log"})
    assert sky.download_logs("dev", [1]) == {"1": "/p/logs/dev/job-1.log"}


def test_ctrl_c_in_stream_and_get_raises_request_interrupted(fake, client):
    request_id = sky.launch(TASK, "dev")
    fake.interrupt_on.add("/api/get")
    with pytest.raises(KeyboardInterrupt) as info:
        sky.stream_and_get(request_id, output_stream=io.StringIO())
    assert info.value.request_id == request_id


def _task(run, setup=None):
    return sky.Task(
        run=run, setup=setup, num_nodes=2, envs={"A": "1"}, resources=sky.Resources(infra="local")
    )


def _by_rank(rank, ips):
    return f"echo {rank} of {len(ips)} at {ips[rank]}" if rank else None


def test_callable_run_launches_then_execs_one_command_per_rank(fake, client, records):
    fake.on("launch", {"job_id": None, "handle": records.handle("lam", nodes=2)})
    fake.on("exec", {"job_id": 1, "handle": records.handle("lam", nodes=2)})
    request_id = sky.launch(_task(_by_rank), cluster_name="lam")
    assert "run" not in fake.bodies("launch")[0]["task"]
    (exec_body,) = fake.bodies("exec")
    assert exec_body["cluster_name"] == "lam"
    assert exec_body["task"]["run"] == [None, "echo 1 of 2 at 10.0.0.2"]
    assert exec_body["task"]["envs"] == {"A": "1"}
    assert fake.requests[request_id]["name"] == "exec"
    assert sky.get(request_id)["job_id"] == 1


def test_callable_run_waits_for_setup_and_does_not_repeat_it(fake, client, records):
    fake.on("launch", {"job_id": 1, "handle": records.handle("lam", nodes=2)})
    fake.on("job_status", {"1": sky.JobStatus.SUCCEEDED})
    fake.on("exec", {"job_id": 2, "handle": records.handle("lam", nodes=2)})
    request_id = sky.launch(_task(_by_rank, setup="pip install x"), cluster_name="lam")
    assert fake.bodies("launch")[0]["task"]["setup"] == "pip install x"
    assert fake.bodies("job_status") == [{"cluster_name": "lam", "job_ids": [1]}]
    assert "setup" not in fake.bodies("exec")[0]["task"]
    assert fake.requests[request_id]["name"] == "exec"


def test_callable_run_with_failed_setup_returns_the_launch(fake, client, records):
    fake.on("launch", {"job_id": 1, "handle": records.handle("lam", nodes=2)})
    fake.on("job_status", {"1": sky.JobStatus.FAILED_SETUP})
    request_id = sky.launch(_task(_by_rank, setup="false"), cluster_name="lam")
    assert fake.requests[request_id]["name"] == "launch"
    assert fake.bodies("exec") == []


def test_callable_run_on_exec_uses_the_clusters_node_ips(fake, client, records):
    cluster = records.cluster("lam")
    fake.on("status", [cluster])
    sky.exec(_task(lambda rank, ips: f"echo {ips}"), "lam")
    assert fake.bodies("exec")[0]["task"]["run"] == ["echo ['10.0.0.1']"]


def test_callable_run_must_return_a_string(fake, client, records):
    fake.on("status", [records.cluster("lam")])
    with pytest.raises(exceptions.TaskValidationError, match="rank 0"):
        sky.exec(_task(lambda rank, ips: 42), "lam")


def test_api_status_decodes_records_and_sends_filters(fake, client):
    fake.request_records = [
        {
            "request_id": "r1",
            "name": "launch",
            "user_name": "alice",
            "user_hash": "h",
            "status": "RUNNING",
            "created_at": 1.0,
            "cluster_name": "dev",
        },
    ]
    (record,) = sky.api_status(["r1"], all_status=True, all_users=True, limit=3)
    assert record.status == sky.RequestStatus.RUNNING
    params = fake.calls[-1].url.params
    assert params.get_list("request_ids") == ["r1"]
    assert (params["all"], params["all_users"], params["limit"]) == ("true", "true", "3")


def test_api_cancel_returns_a_request_whose_result_is_the_cancelled_ids(fake, client):
    fake.on("api_cancel", ["abcd-full"])
    request_id = sky.api_cancel("abcd")
    assert isinstance(request_id, str) and request_id != "abcd"
    assert sky.get(request_id) == ["abcd-full"]
    assert fake.bodies("api_cancel")[-1] == {
        "request_ids": ["abcd"], "all": False, "all_users": False,
    }  # fmt: skip
    with pytest.raises(ValueError, match="request IDs"):
        sky.api_cancel()
    sky.api_cancel(all=True)
    assert fake.bodies("api_cancel")[-1] == {"request_ids": [], "all": True, "all_users": False}


def test_api_info_adds_endpoint_and_user(client):
    info = sky.api_info()
    assert info["endpoint"] == "http://127.0.0.1:46590"
    assert info["api_version"] == "1.0"
    assert set(info["user"]) == {"name", "hash"}


def test_api_stop_posts_shutdown_and_waits_until_gone(fake, client):
    assert sdk.api_stop() is True
    assert "/api/shutdown" in fake.paths()
    assert sdk.api_stop() is False


def test_public_names():
    for name in (
        "launch",
        "exec",
        "get",
        "stream_and_get",
        "tail_logs",
        "api_status",
        "Task",
        "Resources",
        "ClusterStatus",
        "JobStatus",
        "RequestStatus",
        "OptimizeTarget",
        "StatusRefreshMode",
    ):
        assert name in dir(sky)
    assert sky.exceptions.ClusterDoesNotExist is exceptions.ClusterDoesNotExist
    with pytest.raises(AttributeError):
        sky.no_such_thing  # noqa: B018


def test_callable_run_defers_autodown_to_the_exec(fake, client, records):
    fake.on("launch", {"job_id": None, "handle": records.handle("lam", nodes=2)})
    sky.launch(_task(_by_rank), cluster_name="lam", down=True)
    launch_body = fake.bodies("launch")[0]
    assert (launch_body["down"], launch_body["idle_minutes_to_autostop"]) == (False, None)
    assert fake.bodies("exec")[0]["down"] is True
    sky.launch(_task(_by_rank), cluster_name="lam", down=True, idle_minutes_to_autostop=7)
    assert fake.bodies("exec")[1]["down"] is False
    assert fake.bodies("autostop") == [{"cluster_name": "lam", "idle_minutes": 7, "down": True}]


def test_callable_run_dryrun_only_plans(fake, client):
    sky.launch(_task(_by_rank), cluster_name="lam", dryrun=True)
    assert fake.bodies("launch")[0]["dryrun"] is True
    assert fake.bodies("exec") == []
