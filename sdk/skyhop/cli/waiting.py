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


def follow_request(request_id: str, title: str) -> Any:
    """Stream a request's log (with a spinner on a terminal) and return its result."""
    from skyhop import sdk

    out = sys.stdout
    if out.isatty():
        with Spinner(title, request_id, out) as spinner:
            return sdk.stream_and_get(request_id, output_stream=spinner)  # type: ignore[arg-type]
    return sdk.stream_and_get(request_id, output_stream=out)


def follow_job(cluster_name: str, job_id: int | None, *, follow: bool = True, tail: int = 0) -> int:
    """Print a job's log through a ``logs`` request; returns the job's exit code."""
    from skyhop import sdk

    request_id = sdk.submit_logs(cluster_name, job_id, follow=follow, tail=tail)
    return int(sdk.stream_and_get(request_id, output_stream=sys.stdout))


def job_hints(cluster_name: str, job_id: int) -> str:
    return "\n".join(
        [
            f"Job ID: {job_id}",
            f"├── To stream its logs: skyhop logs {cluster_name} {job_id}",
            f"└── To cancel it: skyhop cancel {cluster_name} {job_id}",
        ]
    )


def submit_or_follow(operation: str, request_id: str, title: str, async_: bool) -> Any:
    """With ``--async`` print how to follow the request; otherwise follow it."""
    if async_:
        click.echo(submitted_message(operation, request_id))
        return None
    return follow_request(request_id, title)
