"""Waiting on requests in the CLI: streaming their logs, a spinner, and Ctrl+C.

On a terminal the request's log scrolls above a spinner line that names the request
(``View logs: skyhop api logs <id>``); elsewhere the log is streamed plainly. Ctrl+C
detaches: the SDK raises ``RequestInterrupted`` and the CLI prints how to reattach.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, TextIO

import click

SPINNER_FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


def short_id(request_id: str) -> str:
    return request_id[:8]


def detached_message(request_id: str, endpoint: str) -> str:
    """What Ctrl+C prints: the request keeps running; how to follow or cancel it."""
    rid = short_id(request_id)
    return "\n".join(
        [
            "⚙︎ Request will continue running asynchronously.",
            f"├── View logs: skyhop api logs {rid}",
            f"├── Or, visit: {endpoint}/api/stream?request_id={rid}",
            f"└── To cancel the request, run: skyhop api cancel {rid}",
        ]
    )


def submitted_message(operation: str, request_id: str) -> str:
    """What ``--async`` prints after submitting."""
    rid = short_id(request_id)
    return "\n".join(
        [
            f"⚙︎ Submitted {operation} request: {request_id}",
            f"├── View logs: skyhop api logs {rid}",
            f"└── To cancel the request, run: skyhop api cancel {rid}",
        ]
    )


class Spinner:
    """A text stream that prints above an animated status line on a terminal."""

    def __init__(self, title: str, request_id: str, stream: TextIO, interval: float = 0.1) -> None:
        self.status = f"{title}  View logs: skyhop api logs {short_id(request_id)}"
        self.stream = stream
        self.interval = interval
        self._frame = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._partial = False  # the last text written did not end with a newline

    def __enter__(self) -> Spinner:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        with self._lock:
            self._clear()
            self.stream.flush()

    def write(self, text: str) -> int:
        with self._lock:
            self._clear()
            self.stream.write(text)
            self._partial = not text.endswith("\n")
            self._draw()
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def _clear(self) -> None:
        if not self._partial:
            self.stream.write("\r\x1b[K")

    def _draw(self) -> None:
        if self._partial:
            return
        frame = SPINNER_FRAMES[self._frame % len(SPINNER_FRAMES)]
        self.stream.write(f"{frame} {self.status}")
        self.stream.flush()

    def _spin(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                self._frame += 1
                self._clear()
                self._draw()


class HeldErrorLine:
    """A text stream that holds back a last line starting with ``Error: ``.

    A failed request's log ends with ``Error: <Type>: <message>``, and the CLI prints the
    same error on stderr when the SDK raises it. Holding the line back until more text
    comes (or the request ends) lets :func:`stream_then_get` drop it when the request
    failed, so each error is printed once, on stderr. Anything else passes at once.
    """

    MARK = "Error: "

    def __init__(self, out: Any) -> None:
        self.out = out
        self.held = ""

    def write(self, text: str) -> int:
        data = self.held + text
        start = data.rfind("\n", 0, len(data) - 1) + 1  # where the last line starts
        last = data[start:]
        self.held = last if last.startswith(self.MARK) or self.MARK.startswith(last) else ""
        shown = data[: len(data) - len(self.held)]
        if shown:
            self.out.write(shown)
        return len(text)

    def flush(self) -> None:
        self.out.flush()

    def release(self, *, failed: bool = False) -> None:
        """The stream ended: drop a held error line if the request failed, else show it."""
        if self.held and not (failed and self.held.startswith(self.MARK)):
            self.out.write(self.held)
            self.out.flush()
        self.held = ""


def stream_then_get(request_id: str, out: Any) -> Any:
    """``sdk.stream_and_get`` printing the request's closing error line only on stderr
    (by the CLI, from the raised exception), never twice."""
    from skyhop import sdk
    from skyhop.client import RequestInterrupted

    held = HeldErrorLine(out)
    try:
        result = sdk.stream_and_get(request_id, output_stream=held)  # type: ignore[arg-type]
    except RequestInterrupted:
        held.release()
        raise
    except Exception:
        held.release(failed=True)
        raise
    held.release()
    return result


def follow_request(request_id: str, title: str) -> Any:
    """Stream a request's log (with a spinner on a terminal) and return its result."""
    out = sys.stdout
    if out.isatty():
        with Spinner(title, request_id, out) as spinner:
            return stream_then_get(request_id, spinner)
    return stream_then_get(request_id, out)


def follow_job(cluster_name: str, job_id: int | None, *, follow: bool = True, tail: int = 0) -> int:
    """Print a job's log through a ``logs`` request; returns the job's exit code."""
    from skyhop import sdk

    request_id = sdk.submit_logs(cluster_name, job_id, follow=follow, tail=tail)
    return int(stream_then_get(request_id, sys.stdout))


def job_hints(cluster_name: str, job_id: int) -> str:
    """The ``Useful Commands`` block printed after a launch or exec (docs/cli-output.md)."""
    return "\n".join(
        [
            "📋 Useful Commands",
            f"Job ID: {job_id}",
            f"├── To cancel the job:\t\tskyhop cancel {cluster_name} {job_id}",
            f"├── To stream job logs:\t\tskyhop logs {cluster_name} {job_id}",
            f"└── To view job queue:\t\tskyhop queue {cluster_name}",
            f"Cluster name: {cluster_name}",
            f"├── To submit a job:\t\tskyhop exec {cluster_name} YAML_FILE",
            f"├── To stop the cluster:\t\tskyhop stop {cluster_name}",
            f"└── To tear down the cluster:\tskyhop down {cluster_name}",
        ]
    )


def submit_or_follow(operation: str, request_id: str, title: str, async_: bool) -> Any:
    """With ``--async`` print how to follow the request; otherwise follow it."""
    if async_:
        click.echo(submitted_message(operation, request_id))
        return None
    return follow_request(request_id, title)
