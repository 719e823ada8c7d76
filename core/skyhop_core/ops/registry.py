"""Every operation the API serves: name -> parameters, handler, scheduling class."""

from __future__ import annotations

from skyhop_core.ops import clusters, gpus, info, jobs, managed_jobs, requests_cancel
from skyhop_core.ops import params as P
from skyhop_core.requests.engine import Operation


def operations() -> dict[str, Operation]:
    ops = [
        Operation("launch", P.LaunchParams, clusters.launch, "long", clusters.validate_task),
        Operation("exec", P.ExecParams, clusters.exec_, "long", clusters.validate_task),
        Operation("stop", P.ClusterParams, clusters.stop, "long"),
        Operation("start", P.StartParams, clusters.start, "long"),
        Operation("down", P.ClusterParams, clusters.down, "long"),
        Operation("autostop", P.AutostopParams, clusters.autostop, "short"),
        Operation("status", P.StatusParams, clusters.status, "short"),
        Operation("queue", P.QueueParams, jobs.queue, "short"),
        Operation("job_status", P.JobStatusParams, jobs.job_status, "short"),
        Operation("cancel", P.CancelParams, jobs.cancel, "short"),
        Operation("logs", P.LogsParams, jobs.logs, "stream", live_log=True),
        Operation("download_logs", P.DownloadLogsParams, jobs.download_logs, "stream"),
        Operation(
            "optimize", P.OptimizeParams, info.optimize, "short", clusters.validate_task
        ),
        Operation("check", P.NoParams, info.check, "short"),
        Operation("show_gpus", P.ShowGpusParams, gpus.show_gpus, "short"),
        Operation(
            "jobs_launch", P.JobsLaunchParams, managed_jobs.jobs_launch, "short",
            managed_jobs.validate_jobs_launch,
        ),
        Operation("jobs_queue", P.JobsQueueParams, managed_jobs.jobs_queue, "short"),
        Operation("jobs_cancel", P.JobsCancelParams, managed_jobs.jobs_cancel, "short"),
        Operation("jobs_logs", P.JobsLogsParams, managed_jobs.jobs_logs, "stream"),
        Operation("api_cancel", P.CancelRequestsParams, requests_cancel.api_cancel, "short"),
    ]
    return {op.name: op for op in ops}
