"""Request round trip of a read from the SDK: ``sky.get(sky.status())``.

One SDK read is one HTTP call (``POST /api/v1/status?wait=0.25``, answered with the
result; see docs/http-api.md) plus the request's life on the server (a row in the store,
a cancel scope, a result).
The baseline is one keep-alive loopback round trip (``GET /api/health``) to the trivial
server, alternating with the SDK reads.
"""

from __future__ import annotations

import httpx

from bench.report import Figure, Target
from bench.util import Run, paired, summary


def sdk_read() -> None:
    import skyhop as sky

    sky.get(sky.status())


def round_trip(run: Run) -> list[Figure]:
    runs = run.reps(100, 1000)
    with httpx.Client(base_url=run.trivial.endpoint) as client:

        def base() -> None:
            client.get("/api/health").raise_for_status()

        reads, bases = paired(sdk_read, base, runs, warmup=20)
    s, b = summary(reads, 1000), summary(bases, 1000)
    return [Figure("requests", "read round trip (SDK status)", "ms", s["p50"], s["p99"],
                   "1 loopback HTTP round trip", b["p50"], b["p99"], Target("<", 2),
                   f"{runs} sequential sky.get(sky.status()) after 20 warm-ups; "
                   "a read is 1 HTTP call")]

