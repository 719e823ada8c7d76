"""The baseline server: ``python -m bench.trivial PORT`` (stdlib only, HTTP/1.1 keep-alive).

It answers the calls a skyhop client makes with canned bodies and no work, so the gap
between skyhop and this server is what skyhop itself costs:

- ``GET /api/health`` → a small JSON document;
- ``POST /api/v1/<op>`` → ``202 {"request_id": ...}`` (the body is read and ignored);
- ``GET /api/get`` → a finished request with an empty result;
- ``GET /bytes?n=N`` → N bytes of 100-byte text lines, streamed in 64 KiB writes.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

CHUNK = (b"x" * 99 + b"\n") * 655  # 65,500 bytes


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else headers and body wait on delayed ACKs (40 ms)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def _json(self, code: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        url = urlparse(self.path)
        if url.path == "/api/health":
            self._json(200, {"status": "healthy", "version": "0", "api_version": "1.0"})
        elif url.path == "/api/get":
            self._json(200, {"request_id": "0", "name": "status", "status": "SUCCEEDED",
                             "result": [], "error": None})
        elif url.path == "/bytes":
            total = int(parse_qs(url.query).get("n", ["0"])[0])
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(total))
            self.end_headers()
            sent = 0
            while sent < total:
                piece = CHUNK[: min(len(CHUNK), total - sent)]
                self.wfile.write(piece)
                sent += len(piece)
        else:
            self._json(404, {"error": {"type": "NotFound", "message": url.path, "args": {}}})

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self._json(202, {"request_id": "00000000-0000-4000-8000-000000000000"})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the listen backlog: 100 clients connect at once


def main() -> None:
    Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()


if __name__ == "__main__":
    main()
