"""WebSocket pass-through for the load balancer.

The client side is hypercorn's (ASGI ``websocket`` scope); the replica side is a trio
TCP stream driven by wsproto (the WebSocket library hypercorn itself uses), so neither
side parses HTTP by hand. The replica's handshake answer decides: accepted, the client
is accepted with the same subprotocol and messages are relayed both ways until either
side closes; refused, the client's handshake is refused. A replica that refuses the TCP
connection is reported and another ready one is tried, as for HTTP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

if TYPE_CHECKING:
    from skyhop_core.serve.load_balancer import LoadBalancer

_SKIP = frozenset({
    b"host", b"connection", b"upgrade", b"sec-websocket-key", b"sec-websocket-version",
    b"sec-websocket-extensions", b"sec-websocket-protocol",
})


async def _connect(lb: LoadBalancer) -> tuple[int, str, trio.SocketStream] | None:
    tried: set[int] = set()
    while True:
        replica_id = lb.policy.choose(lb._ready_ids, tried)
        if replica_id is None:
            return None
        tried.add(replica_id)
        endpoint = lb.ready.get(replica_id)
        if endpoint is None:
            continue
        host, _, port = endpoint.rpartition(":")
        try:
            with trio.fail_after(5.0):
                stream = await trio.open_tcp_stream(host, int(port))
        except (OSError, trio.TooSlowError) as exc:
            lb.log(f"Replica {replica_id} ({endpoint}) refused a WebSocket connection: {exc}.")
            lb.on_connect_failure(replica_id)
            continue
        return replica_id, endpoint, stream


async def proxy_websocket(lb: LoadBalancer, scope: dict[str, Any], receive: Any,
                          send: Any) -> None:
    first = await receive()
    if first["type"] != "websocket.connect":
        return
    connected = await _connect(lb)
    if connected is None:
        await send({"type": "websocket.close", "code": 1013, "reason": "no ready replica"})
        return
    replica_id, endpoint, stream = connected
    lb.policy.acquire(replica_id)
    try:
        async with stream:
            await _relay(scope, receive, send, endpoint, stream)
    finally:
        lb.policy.release(replica_id)


async def _relay(scope: dict[str, Any], receive: Any, send: Any, endpoint: str,
                 stream: trio.SocketStream) -> None:
    ws = WSConnection(ConnectionType.CLIENT)
    target = scope.get("raw_path") or scope["path"].encode()
    if scope.get("query_string"):
        target += b"?" + scope["query_string"]
    headers = [(k, v) for k, v in scope["headers"] if k.lower() not in _SKIP]
    await stream.send_all(ws.send(Request(
        host=endpoint, target=target.decode("latin-1"), extra_headers=headers,
        subprotocols=list(scope.get("subprotocols") or []),
    )))
    # The replica's answer to the handshake.
    while True:
        data = await stream.receive_some(65536)
        if not data:
            await send({"type": "websocket.close", "code": 1011})
            return
        ws.receive_data(data)
        for event in ws.events():
            if isinstance(event, AcceptConnection):
                await send({"type": "websocket.accept", "subprotocol": event.subprotocol})
                await _pump(receive, send, ws, stream)
                return
            if isinstance(event, RejectConnection | RejectData):
                await send({"type": "websocket.close", "code": 1011,
                            "reason": "the replica refused the WebSocket"})
                return


async def _pump(receive: Any, send: Any, ws: WSConnection, stream: trio.SocketStream) -> None:
    async with trio.open_nursery() as nursery:

        async def client_to_replica() -> None:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    code = message.get("code", 1000)
                    with trio.move_on_after(2):
                        await stream.send_all(ws.send(CloseConnection(code=code)))
                    nursery.cancel_scope.cancel()
                    return
                if message.get("text") is not None:
                    await stream.send_all(ws.send(TextMessage(data=message["text"])))
                elif message.get("bytes") is not None:
                    await stream.send_all(ws.send(BytesMessage(data=message["bytes"])))

        async def replica_to_client() -> None:
            parts: list[Any] = []
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    await send({"type": "websocket.close", "code": 1006})
                    nursery.cancel_scope.cancel()
                    return
                ws.receive_data(data)
                for event in ws.events():
                    if isinstance(event, Message):
                        parts.append(event.data)
                        if event.message_finished:
                            await _deliver(send, parts, isinstance(event, TextMessage))
                            parts = []
                    elif isinstance(event, Ping):
                        await stream.send_all(ws.send(event.response()))
                    elif isinstance(event, CloseConnection):
                        with trio.move_on_after(2):
                            await stream.send_all(ws.send(event.response()))
                        await send({"type": "websocket.close", "code": event.code})
                        nursery.cancel_scope.cancel()
                        return

        nursery.start_soon(client_to_replica)
        nursery.start_soon(replica_to_client)


async def _deliver(send: Any, parts: list[Any], text: bool) -> None:
    if text:
        await send({"type": "websocket.send", "text": "".join(parts)})
    else:
        await send({"type": "websocket.send", "bytes": b"".join(parts)})
