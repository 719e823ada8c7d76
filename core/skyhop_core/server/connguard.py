"""One client's broken connection ends that connection, never the whole server.

hypercorn's trio worker runs every connection's handler in the server's nursery, so an
exception a handler does not expect propagates there and stops the server: every
request, controller and load balancer in the process with it. Its protocol code has
such bugs that any client can trigger, for example an HTTP/2 DATA frame for a stream
that has already been answered (``KeyError`` in ``protocol/h2.py``; hypercorn issues
#197 and #329, open pull requests #312 and #334). Over plain HTTP, hypercorn speaks HTTP/2
to any client that sends the HTTP/2 preface, whatever the configuration says.

:func:`guard_connections` makes hypercorn's trio worker use a ``TCPServer`` whose ``run``
catches what the connection raised (after hypercorn has closed it) and logs it once per
kind. Cancellation still propagates. This replaces a name in a hypercorn module, so it
is checked at start-up: if a hypercorn release moves it, the server refuses to start
instead of running unguarded. ``tests/server/test_connguard.py`` sends the frame that
broke it and checks that the server goes on answering.
"""

from __future__ import annotations

import sys

_logged: set[str] = set()


def guard_connections() -> None:
    """Install the guard (idempotent)."""
    from hypercorn.trio import run, tcp_server

    if getattr(run.TCPServer, "skyhop_guarded", False):
        return
    if run.TCPServer is not tcp_server.TCPServer:
        raise RuntimeError(
            "hypercorn.trio.run.TCPServer is not hypercorn's TCPServer: cannot guard the "
            "server against a broken connection (skyhop_core/server/connguard.py)."
        )

    class GuardedTCPServer(tcp_server.TCPServer):  # type: ignore[misc]
        skyhop_guarded = True

        async def run(self) -> None:
            try:
                await super().run()
            except Exception as exc:  # noqa: BLE001 - one connection's, closed already
                _log(exc)

    run.TCPServer = GuardedTCPServer  # type: ignore[misc]


def _log(exc: BaseException) -> None:
    from skyhop_core.exceptions import reason_of

    kind = reason_of(exc)[:200]
    if kind not in _logged and len(_logged) < 100:
        _logged.add(kind)
        print(f"A client connection failed in the HTTP server and was closed ({kind}); "
              "the server goes on. Logged once per kind.", file=sys.stderr, flush=True)

