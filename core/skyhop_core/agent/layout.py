"""Where the agent keeps its files inside the runtime directory."""

from __future__ import annotations

import os


class Runtime:
    """The paths of one runtime directory (``--root``)."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(os.path.expanduser(root))

    @property
    def cluster_json(self) -> str:
        return os.path.join(self.root, "cluster.json")

    @property
    def db(self) -> str:
        return os.path.join(self.root, "agent.db")

    @property
    def pid_file(self) -> str:
        return os.path.join(self.root, "daemon.pid")

    @property
    def lock_file(self) -> str:
        return os.path.join(self.root, "daemon.lock")

    @property
    def stop_lock_file(self) -> str:
        """Held exclusively by ``stop`` for its whole run (reconcilers then stand back)."""
        return os.path.join(self.root, "stop.lock")

    @property
    def heartbeat_file(self) -> str:
        """Touched by the daemon on every scheduling pass; its mtime is the heartbeat."""
        return os.path.join(self.root, "daemon.heartbeat")

    @property
    def daemon_log(self) -> str:
        return os.path.join(self.root, "daemon.log")

    def job_dir(self, job_id: int) -> str:
        return os.path.join(self.root, "jobs", str(job_id))

    def log_path(self, job_id: int) -> str:
        return os.path.join(self.job_dir(job_id), "run.log")

    def exit_codes_path(self, job_id: int) -> str:
        """The failing exit code(s) of a FAILED / FAILED_SETUP job (JSON list)."""
        return os.path.join(self.job_dir(job_id), "exit_codes.json")

    def exists(self) -> bool:
        return os.path.isdir(self.root)

    def ensure(self) -> None:
        os.makedirs(os.path.join(self.root, "jobs"), exist_ok=True)
