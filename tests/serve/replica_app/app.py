"""A replica for the serve tests: a small ASGI app under hypercorn on port 8080.

GET /        -> "v<VERSION> r<SKYHOP_SERVE_REPLICA_ID>"
GET /health  -> 200 (the readiness probe)
GET /stream  -> three server-sent events, 0.4 s apart
GET /slow?s= -> answers after s seconds
POST /echo   -> the request body back
GET /die     -> the server kills itself (SIGKILL)
GET /missing -> 404
WS  /ws      -> echoes every message, prefixed with the replica ID
"""

import asyncio
import os
import signal
import sys

from hypercorn.asyncio import serve
from hypercorn.config import Config

WHO = f"v{os.environ.get('VERSION', '1')} r{os.environ.get('SKYHOP_SERVE_REPLICA_ID')}"


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": f"{WHO}: {message.get('text')}"})
    path = scope["path"]
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if path == "/die":
        os.kill(os.getpid(), signal.SIGKILL)
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        for i in range(3):
            await send({"type": "http.response.body", "body": f"data: {i}\n\n".encode(),
                        "more_body": True})
            await asyncio.sleep(0.4)
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/slow":
        seconds = float(scope["query_string"].decode().partition("=")[2] or 1)
        await asyncio.sleep(seconds)
    reply = body if path == "/echo" else WHO.encode()
    await send({"type": "http.response.start", "status": 404 if path == "/missing" else 200,
                "headers": [(b"content-type", b"text/plain"), (b"x-replica", WHO.encode())]})
    await send({"type": "http.response.body", "body": reply})


if __name__ == "__main__":
    config = Config()
    config.bind = [f"0.0.0.0:{sys.argv[1] if len(sys.argv) > 1 else 8080}"]
    asyncio.run(serve(app, config))
