"""The fake API server's HTTP routes (Starlette): ``/api/v1`` for namespaces, nodes,
pods (with ``log`` and ``exec``) and services, discovery for ``kubectl``, and
``/_fake/received`` (every manifest as it was sent, for tests to assert on).

Lists honour ``labelSelector``, ``fieldSelector`` and ``watch`` (JSON lines of
``{"type", "object"}`` from ``resourceVersion``, ``timeoutSeconds``); errors are
``Status`` objects with the real reasons (NotFound, AlreadyExists, Invalid, Expired,
Unauthorized).
"""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from typing import Any

import trio
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from . import execws, validate
from .kubelet import Kubelet
from .schedule import choose_node
from .store import ApiError, Store, now

KINDS = {"pods": "Pod", "services": "Service", "namespaces": "Namespace", "nodes": "Node"}
NAMESPACED = {"pods", "services"}
VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


class FakeCluster:
    """The state of one fake cluster: store, kubelet, token."""

    def __init__(self, store: Store, kubelet: Kubelet, token: str) -> None:
        self.store, self.kubelet, self.token = store, kubelet, token
        self.nursery: trio.Nursery | None = None

    # The scheduler: whenever anything changes, try to place every unscheduled pod.
    async def schedule_loop(self) -> None:
        while True:
            changed = self.store.changed
            self.schedule_once()
            await changed.wait()

    def schedule_once(self) -> None:
        pods = self.store.list("pods")
        nodes = self.store.list("nodes")
        for pod in pods:
            if pod["spec"].get("nodeName") or pod["metadata"].get("deletionTimestamp"):
                continue
            node, message = choose_node(pod, nodes, pods)
            status = pod["status"]
            if node is None:
                cond = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                        "message": message, "lastProbeTime": None,
                        "lastTransitionTime": now()}  # fmt: skip
                old = status.get("conditions") or [{}]
                if old[0].get("message") != message:
                    status["conditions"] = [cond]
                    self.store.update("pods", pod)
                continue
            pod["spec"]["nodeName"] = node
            status["conditions"] = [{"type": "PodScheduled", "status": "True",
                                     "lastTransitionTime": now()}]  # fmt: skip
            self.store.update("pods", pod)
            assert self.nursery is not None
            self.nursery.start_soon(self.kubelet.run_pod, pod)


def _error(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.status(), status_code=exc.code)


def _list_kind(kind: str) -> str:
    return KINDS[kind] + "List"


def _present(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out.setdefault("kind", KINDS[kind])
    out.setdefault("apiVersion", "v1")
    return out


def make_app(cluster: FakeCluster) -> Starlette:
    store = cluster.store

    def authorize(request: Request | WebSocket) -> None:
        header = request.headers.get("authorization", "")
        if header != f"Bearer {cluster.token}":
            print(f"401 {request.url.path}: authorization {header[:12]!r}...", flush=True)
            raise ApiError(401, "Unauthorized", "Unauthorized")

    async def watch(request: Request, kind: str, namespace: str | None) -> Response:
        q = request.query_params
        rv = q.get("resourceVersion")
        timeout = float(q.get("timeoutSeconds") or 1800)
        from .store import field_matcher, label_matcher

        lm, fm = label_matcher(q.get("labelSelector")), field_matcher(q.get("fieldSelector"))

        def wanted(obj: dict[str, Any]) -> bool:
            meta = obj["metadata"]
            return ((namespace is None or meta.get("namespace") == namespace)
                    and lm(meta.get("labels") or {}) and fm(obj))  # fmt: skip

        if rv in (None, "", "0"):
            initial = [("ADDED", o) for o in store.list(kind, namespace) if wanted(o)]
            since = store.version
        else:
            initial, since = [], int(rv)
            store.events_since(since)  # 410 before the stream starts

        async def lines() -> AsyncIterator[bytes]:
            nonlocal since
            for event, obj in initial:
                yield (json.dumps({"type": event, "object": _present(kind, obj)}) + "\n").encode()
            with trio.move_on_after(timeout):
                while True:
                    changed = store.changed
                    try:
                        events = store.events_since(since)
                    except ApiError as exc:
                        yield (
                            json.dumps({"type": "ERROR", "object": exc.status()}) + "\n"
                        ).encode()
                        return
                    for version, k, event, obj in events:
                        since = version
                        if k == kind and wanted(obj):
                            line = {"type": event, "object": _present(kind, obj)}
                            yield (json.dumps(line) + "\n").encode()
                    await changed.wait()

        return StreamingResponse(lines(), media_type="application/json")

    async def collection(request: Request) -> Response:
        try:
            authorize(request)
            kind = request.path_params["kind"]
            namespace = request.path_params.get("namespace")
            if kind not in KINDS or (namespace is not None and kind not in NAMESPACED):
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            if namespace is not None:
                store.get("namespaces", "", namespace)
            q = request.query_params
            if request.method == "GET":
                if q.get("watch") in ("true", "1"):
                    return await watch(request, kind, namespace)
                items = store.list(kind, namespace, q.get("labelSelector"), q.get("fieldSelector"))
                return JSONResponse({"kind": _list_kind(kind), "apiVersion": "v1",
                                     "metadata": {"resourceVersion": str(store.version)},
                                     "items": [_present(kind, o) for o in items]})  # fmt: skip
            if request.method == "DELETE":
                items = store.list(kind, namespace, q.get("labelSelector"), q.get("fieldSelector"))
                for obj in items:
                    await delete_object(kind, obj)
                return JSONResponse(
                    {
                        "kind": _list_kind(kind),
                        "apiVersion": "v1",
                        "metadata": {},
                        "items": [_present(kind, o) for o in items],
                    }
                )
            try:
                body = await request.json()
            except ClientDisconnect:
                # The client gave up mid-request (a cancelled launch): like the real API
                # server, create nothing and answer no one.
                return Response(status_code=499)
            if q.get("dryRun") == "All":
                validate.check(kind, body)
                return JSONResponse(body, status_code=201)
            store.received.append(copy.deepcopy(body))
            validate.check(kind, body)
            if body.get("kind") and body["kind"] != KINDS[kind]:
                raise ApiError(400, "BadRequest", f"the kind {body['kind']!r} is not {KINDS[kind]}")
            body.setdefault("spec", {})
            if kind == "pods":
                body["status"] = {"phase": "Pending", "qosClass": "Burstable"}
            if kind == "services":
                spec = body["spec"]
                spec.setdefault("type", "ClusterIP")
                spec.setdefault("clusterIP", f"10.96.0.{len(store.objects) % 250 + 2}")
                if spec["type"] in ("NodePort", "LoadBalancer"):
                    for i, port in enumerate(spec.get("ports") or []):
                        port.setdefault("nodePort", 30000 + (store.version * 7 + i) % 2767)
                ingress = (
                    [{"ip": cluster.kubelet.gateway}] if spec["type"] == "LoadBalancer" else []
                )
                body["status"] = {"loadBalancer": {"ingress": ingress} if ingress else {}}
            obj = store.create(kind, namespace or "", body)
            return JSONResponse(_present(kind, obj), status_code=201)
        except ApiError as exc:
            return _error(exc)

    async def delete_object(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        if kind != "pods":
            return store.delete(kind, meta.get("namespace", ""), meta["name"])
        if meta.get("deletionTimestamp"):
            return obj
        meta["deletionTimestamp"] = now()
        meta["deletionGracePeriodSeconds"] = 30
        store.update("pods", obj)
        assert cluster.nursery is not None
        cluster.nursery.start_soon(cluster.kubelet.delete_pod, obj)
        return obj

    async def item(request: Request) -> Response:
        try:
            authorize(request)
            kind = request.path_params["kind"]
            namespace = request.path_params.get("namespace", "")
            name = request.path_params["name"]
            if kind not in KINDS:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            obj = store.get(kind, namespace, name)
            if request.method == "DELETE":
                obj = await delete_object(kind, obj)
            return JSONResponse(_present(kind, obj))
        except ApiError as exc:
            return _error(exc)

    async def pod_log(request: Request) -> Response:
        try:
            authorize(request)
            ns, name = request.path_params["namespace"], request.path_params["name"]
            pod = store.get("pods", ns, name)
            if pod["status"].get("phase") == "Pending":
                raise ApiError(400, "BadRequest", f'container "{name}" in pod "{name}" is '
                               "waiting to start: ContainerCreating")  # fmt: skip
        except ApiError as exc:
            return _error(exc)
        q = request.query_params
        path = cluster.kubelet.pod_dir(pod) / "log"
        tail = int(q["tailLines"]) if q.get("tailLines") else None
        follow = q.get("follow") in ("true", "1")

        async def body() -> AsyncIterator[bytes]:
            data = path.read_bytes() if path.exists() else b""
            if tail is not None:
                data = b"".join(data.splitlines(keepends=True)[-tail:]) if tail else b""
            yield data
            offset = path.stat().st_size if path.exists() else 0
            while follow and pod["status"].get("phase") == "Running":
                await trio.sleep(0.1)
                if path.exists() and path.stat().st_size > offset:
                    with open(path, "rb") as f:
                        f.seek(offset)
                        chunk = f.read()
                    offset += len(chunk)
                    yield chunk

        return StreamingResponse(body(), media_type="text/plain")

    async def pod_exec(ws: WebSocket) -> None:
        try:
            authorize(ws)
            ns, name = ws.path_params["namespace"], ws.path_params["name"]
            pod = store.get("pods", ns, name)
            if pod["status"].get("phase") != "Running":
                raise ApiError(400, "BadRequest", f"pod {name} is not running")
        except ApiError as exc:
            await ws.send_denial_response(_error(exc))
            return
        requested = [p.strip() for p in ws.headers.get("sec-websocket-protocol", "").split(",")]
        protocol = next((p for p in execws.PROTOCOLS if p in requested), None)
        if protocol is None:
            await ws.send_denial_response(_error(ApiError(
                400, "BadRequest", f"unsupported exec subprotocols {requested}")))  # fmt: skip
            return
        argv = ws.query_params.getlist("command")
        want_stdin = ws.query_params.get("stdin") in ("true", "1")
        env = cluster.kubelet.container_env(pod)
        wrapped = cluster.kubelet.argv_in_pod(pod, argv, env)
        await execws.serve_exec(ws, protocol, wrapped, argv, want_stdin)

    async def version(request: Request) -> Response:
        return JSONResponse({"major": "1", "minor": "32", "gitVersion": "v1.32.0-fake",
                             "platform": "linux/amd64"})  # fmt: skip

    async def api_versions(request: Request) -> Response:
        return JSONResponse({"kind": "APIVersions", "versions": ["v1"],
                             "serverAddressByClientCIDRs": []})  # fmt: skip

    async def api_groups(request: Request) -> Response:
        return JSONResponse({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})

    async def resources(request: Request) -> Response:
        def res(name: str, namespaced: bool, verbs: list[str]) -> dict[str, Any]:
            kind = KINDS.get(name.split("/")[0], "Pod")
            return {"name": name, "singularName": "", "namespaced": namespaced,
                    "kind": kind, "verbs": verbs}  # fmt: skip

        return JSONResponse({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
            res("pods", True, VERBS), res("pods/log", True, ["get"]),
            res("pods/exec", True, ["create", "get"]), res("services", True, VERBS),
            res("nodes", False, VERBS), res("namespaces", False, VERBS)]})  # fmt: skip

    async def received(request: Request) -> Response:
        return JSONResponse(store.received)

    async def health(request: Request) -> Response:
        return Response("ok")

    return Starlette(routes=[
        Route("/version", version), Route("/api", api_versions), Route("/apis", api_groups),
        Route("/api/v1", resources), Route("/healthz", health),
        Route("/_fake/received", received),
        Route("/api/v1/namespaces/{namespace}/pods/{name}/log", pod_log),
        WebSocketRoute("/api/v1/namespaces/{namespace}/pods/{name}/exec", pod_exec),
        Route("/api/v1/namespaces/{namespace}/{kind}", collection,
              methods=["GET", "POST", "DELETE"]),
        Route("/api/v1/namespaces/{namespace}/{kind}/{name}", item, methods=["GET", "DELETE"]),
        Route("/api/v1/{kind}", collection, methods=["GET", "POST", "DELETE"]),
        Route("/api/v1/{kind}/{name}", item, methods=["GET", "DELETE"]),
    ])  # fmt: skip
