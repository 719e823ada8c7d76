"""Every operation the API serves: name -> parameters, handler, scheduling class."""

from __future__ import annotations

from skyhop_core.ops import (
    clusters,
    gpus,
    info,
    jobs,
    managed_jobs,
    requests_cancel,
    serve,
    storage,
    volumes,
)
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
        Operation("cost_report", P.CostReportParams, clusters.cost_report, "short"),
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
        Operation("storage_ls", P.StorageLsParams, storage.storage_ls, "short"),
        Operation("storage_delete", P.StorageDeleteParams, storage.storage_delete, "long"),
        Operation("volumes_apply", P.VolumeApplyParams, volumes.volumes_apply, "short"),
        Operation("volumes_ls", P.NoParams, volumes.volumes_ls, "short"),
        Operation("volumes_delete", P.VolumeDeleteParams, volumes.volumes_delete, "short"),
        Operation("serve_up", P.ServeUpParams, serve.serve_up, "short",
                  serve.validate_serve_task),
        Operation("serve_update", P.ServeUpdateParams, serve.serve_update, "short",
                  serve.validate_serve_task),
        Operation("serve_down", P.ServeDownParams, serve.serve_down, "short"),
        Operation("serve_terminate_replica", P.ServeTerminateReplicaParams,
                  serve.serve_terminate_replica, "short"),
        Operation("serve_status", P.ServeStatusParams, serve.serve_status, "short"),
        Operation("serve_logs", P.ServeLogsParams, serve.serve_logs, "stream"),
        Operation("api_cancel", P.CancelRequestsParams, requests_cancel.api_cancel, "short"),
    ]
    return {op.name: op for op in ops}
