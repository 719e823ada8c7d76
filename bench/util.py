"""Shared helpers: percentiles, timing, process trees (RSS, descendants, cleanup by PID)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.servers import ApiServer, TrivialServer

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
MB = 1024 * 1024


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; NaN when empty."""
    data = sorted(values)
    if not data:
        return float("nan")
    k = (len(data) - 1) * q / 100.0
    lo, hi = int(k), min(int(k) + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def summary(values: Sequence[float], scale: float = 1.0) -> dict[str, float]:
    """Median, p99, min, max and count of samples, each multiplied by ``scale``."""
    return {
        "p50": statistics.median(values) * scale if values else float("nan"),
        "p99": percentile(values, 99) * scale,
        "min": min(values) * scale if values else float("nan"),
        "max": max(values) * scale if values else float("nan"),
        "n": len(values),
    }


def repeat(fn: Callable[[], Any], runs: int, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of ``runs`` calls of ``fn`` after ``warmup`` unrecorded calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def paired(
    fn: Callable[[], Any], base: Callable[[], Any], runs: int, warmup: int = 1
) -> tuple[list[float], list[float]]:
    """Time ``fn`` and its baseline alternately, so machine noise hits both alike."""
    for _ in range(warmup):
        fn()
        base()
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        for f, out in ((fn, samples[0]), (base, samples[1])):
            start = time.perf_counter()
            f()
            out.append(time.perf_counter() - start)
    return samples


def run_quiet(argv: Sequence[str], env: dict[str, str] | None = None, timeout: float = 60) -> None:
    """Run a command with its output discarded; raise if it fails."""
    result = subprocess.run(
        list(argv), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr[-300:]!r}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- processes ------------------------------------------------------------------------


def _ppid_map() -> dict[int, int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def descendants(pid: int) -> set[int]:
    """PIDs of every live descendant of ``pid`` (not ``pid`` itself)."""
    children: dict[int, list[int]] = {}
    for child, parent in _ppid_map().items():
        children.setdefault(parent, []).append(child)
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


def tree_rss(pid: int) -> int:
    """Resident memory of a process and all its descendants, in bytes."""
    return sum(rss_bytes(p) for p in {pid, *descendants(pid)})


CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_cpu(path: str) -> float | None:
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) of a process: (its main thread, all its threads).

    All threads: the process's own count, which keeps the CPU of threads that have
    exited (a worker thread that ended between two samples would otherwise be
    subtracted from the second)."""
    main = _stat_cpu(f"/proc/{pid}/task/{pid}/stat") or 0.0
    return main, _stat_cpu(f"/proc/{pid}/stat") or 0.0


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def processes_under(path: Path) -> list[int]:
    """PIDs whose command line or working directory is under ``path``."""
    found, needle = [], str(path)
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except (OSError, UnicodeDecodeError):
            continue
        if needle in cmdline or cwd.startswith(needle):
            found.append(int(entry))
    return found


def kill_pids(pids: Sequence[int]) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL, a process this suite started; reap it."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


@contextlib.contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    """Point this process (the SDK, and the CLI it spawns) at a server's environment."""
    keys = ("SKYHOP_PERSISTENT_PATH", "SKYHOP_API_SERVER_ENDPOINT", "SKYHOP_CONFIG")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: env[k] for k in keys})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class Run:
    """What every figure needs: the mode, the warm API server and the baseline server."""

    def __init__(self, quick: bool, server: ApiServer, trivial: TrivialServer) -> None:
        self.quick = quick
        self.server = server
        self.trivial = trivial
        #: Clusters launched on ``server``; torn down at the end of the run.
        self.clusters: set[str] = set()

    def reps(self, quick: int, full: int) -> int:
        return quick if self.quick else full
