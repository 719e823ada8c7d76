"""Streaming request logs: offsets, tails, heartbeats, and the SDK's view of them."""

from __future__ import annotations

import io
import time

import httpx

import skyhop as sky
from skyhop.sdk import submit_logs

HEADERS = {"X-Skyhop-User": "dave", "X-Skyhop-User-Hash": "da7e0000"}


def test_stream_resumes_from_offsets_and_tails(server):
    sky.get(sky.launch(sky.Task(resources=sky.Resources(infra="local")), cluster_name="st"))
    job = sky.get(sky.exec(sky.Task(run="for i in $(seq 1 200); do echo line-$i; done"), cluster_name="st"))
    assert sky.tail_logs("st", job["job_id"], follow=True, output_stream=io.StringIO()) == 0
    logs_id = submit_logs("st", job["job_id"], follow=False)
    sky.get(logs_id)
    url = f"{server.endpoint}/api/stream"
    full = httpx.get(url, params={"request_id": logs_id, "follow": "false"}).content
    assert full.count(b"line-") == 200
    middle = full.index(b"line-100\n")
    part = httpx.get(url, params={"request_id": logs_id, "follow": "false", "offset": middle})
    assert part.content == full[middle:]
    tail = httpx.get(url, params={"request_id": logs_id, "follow": "false", "tail": 3})
    assert tail.content == b"".join(full.splitlines(keepends=True)[-3:])
    assert int(tail.headers["x-skyhop-log-offset"]) == len(full) - len(tail.content)
    out = io.StringIO()
    sky.stream_and_get(logs_id, tail=3, output_stream=out)
    assert out.getvalue() == tail.content.decode()
    sky.get(sky.down("st"))


def test_quiet_streams_get_heartbeats_that_clients_drop(make_server, monkeypatch):
    srv = make_server(env={"SKYHOP_STREAM_HEARTBEAT_SECONDS": "0.2"})
    for key in ("SKYHOP_PERSISTENT_PATH", "SKYHOP_API_SERVER_ENDPOINT", "SKYHOP_CONFIG"):
        monkeypatch.setenv(key, srv.env[key])
    sky.get(sky.launch(sky.Task(resources=sky.Resources(infra="local")), cluster_name="hb"))
    job = sky.get(sky.exec(sky.Task(run="echo start; sleep 1.5; echo end"), cluster_name="hb"))
    logs_id = submit_logs("hb", job["job_id"], follow=True)
    raw = b""
    started = time.monotonic()
    with httpx.stream("GET", f"{srv.endpoint}/api/stream", params={"request_id": logs_id},
                      timeout=30) as r:
        for chunk in r.iter_bytes():
            raw += chunk
    assert b"\0" in raw, "no heartbeat on a quiet stream"
    assert time.monotonic() - started < 20
    out = io.StringIO()
    sky.stream_and_get(logs_id, output_stream=out)
    assert "\0" not in out.getvalue()
    assert "start" in out.getvalue() and "end" in out.getvalue()
    sky.get(sky.down("hb"))
