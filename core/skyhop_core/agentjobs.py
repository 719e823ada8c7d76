"""The default runtime and job hooks: they drive the node agent on the head node.

Registered by :func:`skyhop_core.plugins.load_backends` as ``skyhop-default-agent``; the
core calls these for every backend that does not implement the hook itself. They reach
the head node only through the backend's command runner (``ctx.runner_factory``), so a
backend that provides a runner gets the job queue, logs and cancellation for free.

What a backend can put in its handle to shape the agent (all optional):

- ``NodeInfo.extra["agent_launcher"]``: a JSON list, the argv prefix that runs a shell
  command line on that node *from the head* (e.g. ``["ssh", "-i", KEY, "user@10.0.0.2"]``).
  Absent: commands for that node run as local subprocesses of the head's agent.
  The head's own jobs run on the head without it.
- ``NodeInfo.extra["job_launcher"]``: the same kind of argv prefix, for every node the
  head included, taking precedence over ``agent_launcher``. A backend whose agent runs
  outside its nodes (the local backend's sandboxes) sets it.
- ``NodeInfo.extra["mount_launcher"]``: the argv prefix for a store's mount command
  (:mod:`skyhop_core.storage.mounting`), falling back to ``job_launcher``; the local
  backend's runs it as root in the sandbox, where jobs may run as another user.
- ``ClusterHandle.extra["forward_ports"] == "true"``: the agent relays each
  ``handle.ports`` address (``host:port``) to the declared port on loopback.

A runner for a remote node must make ``skyhop_core.agent`` importable there (the package
is stdlib-only; :func:`agent_package_dir` is the directory to copy).
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Sequence
from typing import Any

import attrs
import trio

from skyhop_core.context import BackendContext
from skyhop_core.exceptions import CommandError, SkyhopError
from skyhop_core.hookspecs import hookimpl
from skyhop_core.models.records import ClusterHandle, JobRecord, JobSpec, RuntimeHealth
from skyhop_core.models.status import JobExitCode, JobStatus
from skyhop_core.runner import CommandRunner, OutputCallback

#: How long the head may take to answer a health check before it counts as unreachable.
HEALTH_TIMEOUT_SECONDS = 20.0
#: Writes stdin to the file named by argv[1] atomically, creating its directory.
_WRITE_FILE = (
    "import os, sys\n"
    "path = sys.argv[1]\n"
    "os.makedirs(os.path.dirname(path), exist_ok=True)\n"
    "with open(path + '.tmp', 'wb') as f:\n"
    "    f.write(sys.stdin.buffer.read())\n"
    "os.replace(path + '.tmp', path)\n"
)


def agent_package_dir() -> str:
    """The directory of the (stdlib-only) agent package, for copying to remote nodes."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "agent")


def head_runner(ctx: BackendContext, handle: ClusterHandle) -> CommandRunner:
    """The command runner of the cluster's head node."""
    if ctx.runner_factory is None:
        raise SkyhopError(
            "The default job hooks need BackendContext.runner_factory to reach the head node; "
            "build the context through the core (Services.backend_ctx)."
        )
    return ctx.runner_factory(handle, handle.head)


async def agent_call(runner: CommandRunner, *args: str, input: bytes | None = None) -> Any:
    """Run one agent command on the runner's node; return its JSON output.

    Raises :class:`CommandError` (with the agent's stderr) when it fails.
    """
    argv = [*runner.agent_command(), *args]
    result = await runner.run(argv, input=input)
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip()
        raise CommandError(
            f"The skyhop agent on {runner.node.ip} failed ({args[0]}, exit code "
            f"{result.returncode}): {detail or 'no error output'}",
            returncode=result.returncode,
            command=shlex.join(argv),
            detail=detail,
        )
    return json.loads(result.stdout)


def cluster_description(handle: ClusterHandle) -> dict[str, Any]:
    """The ``cluster.json`` the agent reads (format documented in ``agent/cluster.py``)."""
    nodes = []
    for node in handle.nodes:
        launcher = node.extra.get("job_launcher")
        if launcher is None and node.rank != 0:
            launcher = node.extra.get("agent_launcher")
        nodes.append(
            {
                "rank": node.rank,
                "ip": node.ip,
                "instance_id": node.instance_id,
                "cpus": node.cpus,
                "memory_gb": node.memory_gb,
                "gpus": dict(node.gpus),
                "home": node.home,
                "runtime_dir": node.runtime_dir,
                "launcher": json.loads(launcher) if launcher else None,
            }
        )
    forwards = []
    if handle.extra.get("forward_ports") == "true":
        forwards = [
            {"listen": where, "target": f"127.0.0.1:{port}"}
            for port, where in sorted(handle.ports.items())
        ]
    return {
        "cluster_name": handle.cluster_name,
        "backend": handle.backend,
        "instance_type": handle.instance_type,
        "region": handle.region,
        "zone": handle.zone,
        "nodes": nodes,
        "forwards": forwards,
    }


@hookimpl
async def skyhop_setup_runtime(ctx: BackendContext, handle: ClusterHandle) -> None:
    runner = head_runner(ctx, handle)
    path = handle.head.runtime_dir.rstrip("/") + "/cluster.json"
    content = json.dumps(cluster_description(handle), indent=2).encode()
    result = await runner.run([*runner.python(), "-c", _WRITE_FILE, path], input=content)
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip()
        raise CommandError(
            f"Could not write {path} on the head node: {detail}",
            returncode=result.returncode,
            command="write cluster.json",
            detail=detail,
        )
    await agent_call(runner, "start")


@hookimpl
async def skyhop_submit_job(ctx: BackendContext, handle: ClusterHandle, job: JobSpec) -> int:
    spec = json.dumps(attrs.asdict(job)).encode()
    reply = await agent_call(head_runner(ctx, handle), "submit", input=spec)
    return int(reply["job_id"])


@hookimpl
async def skyhop_queue(
    ctx: BackendContext, handle: ClusterHandle, skip_finished: bool
) -> list[JobRecord]:
    args = ["queue", "--skip-finished"] if skip_finished else ["queue"]
    rows = await agent_call(head_runner(ctx, handle), *args)
    return [JobRecord(**{**row, "status": JobStatus(row["status"])}) for row in rows]


@hookimpl
async def skyhop_tail_logs(
    ctx: BackendContext,
    handle: ClusterHandle,
    job_id: int | None,
    follow: bool,
    tail: int,
    on_output: OutputCallback,
) -> JobStatus | None:
    runner = head_runner(ctx, handle)
    argv = [*runner.agent_command(), "tail"]
    if job_id is not None:
        argv.append(str(job_id))
    if follow:
        argv.append("--follow")
    if tail > 0:
        argv += ["--tail", str(tail)]
    code = await runner.stream(argv, on_output)
    if code == JobExitCode.SUCCEEDED:
        return JobStatus.SUCCEEDED
    if code == JobExitCode.CANCELLED:
        return JobStatus.CANCELLED
    if code == JobExitCode.NOT_FOUND:
        return None
    if code not in (JobExitCode.FAILED, JobExitCode.NOT_FINISHED):
        raise CommandError(
            f"Tailing the log on {runner.node.ip} failed with exit code {code}.",
            returncode=code,
            command=shlex.join(argv),
        )
    # FAILED covers several statuses, NOT_FINISHED several more: ask for the exact one.
    args = ["status", "--job-ids", str(job_id)] if job_id is not None else ["status"]
    statuses = await agent_call(runner, *args)
    found = [s for s in statuses.values() if s is not None]
    if found:
        return JobStatus(found[0])
    return JobStatus.FAILED if code == JobExitCode.FAILED else JobStatus.PENDING


@hookimpl
async def skyhop_cancel_jobs(
    ctx: BackendContext,
    handle: ClusterHandle,
    job_ids: Sequence[int] | None,
    user_hash: str | None,
) -> list[int]:
    if job_ids is not None and not job_ids:
        return []
    args = ["cancel"]
    args += ["--all"] if job_ids is None else ["--job-ids", *map(str, job_ids)]
    if user_hash:
        args += ["--user-hash", user_hash]
    reply = await agent_call(head_runner(ctx, handle), *args)
    return [int(i) for i in reply["cancelled"]]


@hookimpl
async def skyhop_idle_seconds(
    ctx: BackendContext, handle: ClusterHandle, wait_for: str = "jobs"
) -> float:
    runner = head_runner(ctx, handle)
    # SSH sessions are looked for only where users reach the node with SSH: a local
    # node's "SSH sessions" would be the host's own.
    ssh = wait_for == "jobs_and_ssh" and runner.ssh_sessions
    reply = await agent_call(runner, "idle", *(["--ssh"] if ssh else []))
    return float(reply["idle_seconds"])


def agent_stale_seconds() -> float:
    """A heartbeat older than this means a hung daemon (``SKYHOP_AGENT_STALE_SECONDS``)."""
    return float(os.environ.get("SKYHOP_AGENT_STALE_SECONDS", "60"))


@hookimpl
async def skyhop_runtime_health(ctx: BackendContext, handle: ClusterHandle) -> RuntimeHealth:
    runner = head_runner(ctx, handle)
    where = f"the head node ({runner.node.ip})"
    try:
        with trio.fail_after(HEALTH_TIMEOUT_SECONDS):
            reply = await agent_call(runner, "health")
    except trio.TooSlowError:
        return RuntimeHealth(
            False, f"the skyhop agent on {where} did not answer within {HEALTH_TIMEOUT_SECONDS:g}s"
        )
    except (CommandError, ValueError) as exc:
        return RuntimeHealth(False, f"the skyhop agent on {where} cannot be reached: {exc}")
    failed = tuple(int(i) for i in reply.get("failed_driver") or ())
    if reply.get("daemon_pid") is None:
        jobs = f"; job(s) {', '.join(map(str, failed))} were marked FAILED_DRIVER" if failed else ""
        return RuntimeHealth(
            False, f"the skyhop agent daemon on {where} is not running (it died){jobs}", failed
        )
    age = reply.get("heartbeat_age")
    if age is not None and float(age) > agent_stale_seconds():
        return RuntimeHealth(
            False, f"the skyhop agent daemon on {where} has not made progress for {age:.0f}s"
        )
    return RuntimeHealth(True, failed_jobs=failed)
