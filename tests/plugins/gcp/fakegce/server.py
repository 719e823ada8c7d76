"""The fake's HTTP server: OAuth token endpoint, the Compute API, and test controls.

- ``POST /token``: Google's OAuth 2.0 token endpoint for service accounts. The assertion
  (an RS256 JWT signed by google-auth with the key of the credentials file) is verified
  with the public key of the service account the fake created, for audience
  ``<base>/token``; a bad signature, expired JWT or unknown account is ``invalid_grant``.
- ``/compute/v1/...``: every request needs ``Authorization: Bearer`` with a token the
  endpoint issued and a scope that covers Compute; it is matched, checked and answered
  by the discovery document's rules (:mod:`fakegce.discovery`).
- ``/storage/v1/...``, ``/upload/storage/v1/...``, ``/download/storage/v1/...``: Cloud
  Storage's JSON API (:mod:`fakegce.gcs`), with the same tokens.
- ``/_fake/...``: what a test does to the world: inject stockouts and quota errors,
  preempt a spot VM, list instances with their host slots, seed or read buckets, reset.

Request bodies may be sent chunked (Go's HTTP client does for uploads of unknown length).
"""

from __future__ import annotations

import json
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fakegce import discovery, filters
from fakegce.discovery import ApiError
from fakegce.world import ZONES, World

COMPUTE_SCOPES = {"https://www.googleapis.com/auth/cloud-platform",
                  "https://www.googleapis.com/auth/compute"}  # fmt: skip


GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
STORAGE_PREFIXES = ("/storage/v1/", "/upload/storage/v1/", "/resumable/upload/storage/v1/",
                    "/download/storage/v1/")  # fmt: skip


class FakeGce:
    """The fake's state besides the world: the service account and issued tokens."""

    def __init__(self, world: World, account: dict[str, str], public_key: str) -> None:
        from fakegce.gcs import FakeGcs

        self.world, self.account, self.public_key = world, account, public_key
        self.gcs = FakeGcs(world.project, world.base.rsplit("/compute", 1)[0])
        self.tokens: dict[str, tuple[str, set[str], float]] = {}
        self.token_requests = 0
        self.revoked = False

    # --- OAuth --------------------------------------------------------------------

    def issue_token(self, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        import secrets

        from google.auth import exceptions, jwt

        self.token_requests += 1
        if form.get("grant_type", [""])[0] != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return 400, {"error": "unsupported_grant_type"}
        try:
            # google-auth signs for Google's token URI whatever ``token_uri`` says, as Google
            # expects; the fake accepts that audience or its own.
            claims = jwt.decode(
                form.get("assertion", [""])[0],
                certs=self.public_key,
                audience=[GOOGLE_TOKEN_URI, self.world.base.rsplit("/compute", 1)[0] + "/token"],
            )
        except (ValueError, exceptions.GoogleAuthError) as exc:
            return 400, {"error": "invalid_grant", "error_description": f"Invalid JWT: {exc}"}
        if self.revoked or claims.get("iss") != self.account["client_email"]:
            return 400, {"error": "invalid_grant",
                         "error_description": "Invalid grant: account not found"}  # fmt: skip
        token = "ya29.fake-" + secrets.token_urlsafe(24)
        scopes = set(str(claims.get("scope", "")).split())
        self.tokens[token] = (claims["iss"], scopes, time.time() + 3600)
        return 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}

    def scopes(self, header: str | None) -> set[str]:
        """The scopes of the bearer token in ``header``; 401 for a missing or bad one."""
        token = (header or "").removeprefix("Bearer ").strip()
        grant = self.tokens.get(token)
        if not header or grant is None or grant[2] < time.time():
            raise ApiError(401, "Request had invalid authentication credentials. Expected OAuth "
                                "2 access token, login cookie or other valid authentication "
                                "credential.", "authError")  # fmt: skip
        return grant[1]

    def authorize(self, header: str | None) -> None:
        if not self.scopes(header) & COMPUTE_SCOPES:
            raise ApiError(
                403, "Request had insufficient authentication scopes.", "insufficientPermissions"
            )

    # --- Compute --------------------------------------------------------------------

    def compute(self, verb: str, path: str, query: dict[str, list[str]], body: Any) -> Any:
        route, params = discovery.match(verb, path)
        discovery.check_path(route, params)
        args = discovery.check_query(route, query)
        discovery.check_body(route, body)
        if params.get("project") != self.world.project:
            raise ApiError(
                403, f"Permission denied on resource project {params.get('project')}.", "forbidden"
            )
        handler = getattr(self, "do_" + route.method_id.removeprefix("compute.").replace(".", "_"),
                          None)  # fmt: skip
        if handler is None:
            raise ApiError(
                501,
                f"{route.method_id} is a real method the fake does not implement.",
                "notImplemented",
            )
        with self.world.lock:
            result = handler(params, args, body)
        discovery.check_response(route, result)
        return result

    def _list(
        self, kind: str, items: list[dict[str, Any]], args: dict[str, str], schema: str, link: str
    ) -> dict[str, Any]:
        if args.get("filter"):
            fields = set(discovery.document()["schemas"][schema]["properties"])
            keep = filters.parse(args["filter"], fields)
            items = [i for i in items if keep(i)]
        start = int(args.get("pageToken") or 0)
        size = int(args.get("maxResults") or 500)
        out: dict[str, Any] = {"kind": kind, "id": link, "items": items[start : start + size],
                               "selfLink": link}  # fmt: skip
        if start + size < len(items):
            out["nextPageToken"] = str(start + size)
        return out

    def do_projects_get(self, p: dict[str, str], a: dict[str, str], b: Any) -> Any:
        w = self.world
        return {"kind": "compute#project", "id": "4242", "name": w.project, "selfLink": w.url(),
                "commonInstanceMetadata": {"kind": "compute#metadata", "fingerprint": "AAAA",
                                           "items": []},
                "defaultServiceAccount": self.account["client_email"]}  # fmt: skip

    def _region(self, name: str) -> dict[str, Any]:
        w = self.world
        return {"kind": "compute#region", "id": str(abs(hash(name)) % 10**6), "name": name,
                "status": "UP", "selfLink": w.url("regions", name),
                "zones": [w.zone_url(z) for z in ZONES[name]]}  # fmt: skip

    def _zone(self, name: str) -> dict[str, Any]:
        w = self.world
        region = name.rsplit("-", 1)[0]
        return {
            "kind": "compute#zone",
            "id": str(abs(hash(name)) % 10**6),
            "name": name,
            "status": "UP",
            "region": w.url("regions", region),
            "selfLink": w.zone_url(name),
        }

    def do_regions_list(self, p: dict[str, str], a: dict[str, str], b: Any) -> Any:
        return self._list(
            "compute#regionList",
            [self._region(r) for r in ZONES],
            a,
            "Region",
            self.world.url("regions"),
        )

    def do_regions_get(self, p: dict[str, str], a: dict[str, str], b: Any) -> Any:
        if p["region"] not in ZONES:
            raise ApiError(404, f"The resource 'regions/{p['region']}' was not found", "notFound")
        return self._region(p["region"])

    def do_zones_list(self, p: dict[str, str], a: dict[str, str], b: Any) -> Any:
        zones = [self._zone(z) for zs in ZONES.values() for z in zs]
        return self._list("compute#zoneList", zones, a, "Zone", self.world.url("zones"))

    def do_zones_get(self, p: dict[str, str], a: dict[str, str], b: Any) -> Any:
        return self._zone(self.world.check_zone(p["zone"]))

    def do_instances_insert(self, p: dict[str, str], a: dict[str, str], b: Any) -> Any:
        return self.world.insert_instance(p["zone"], b)

    def do_instances_get(self, p: dict[str, str], a: dict[str, str], b: Any) -> Any:
        return self.world.instance(p["zone"], p["instance"])

    def do_instances_list(self, p: dict[str, str], a: dict[str, str], b: Any) -> Any:
        zone = self.world.check_zone(p["zone"])
        items = [i for (z, _), i in sorted(self.world.instances.items()) if z == zone]
        return self._list(
            "compute#instanceList", items, a, "Instance", self.world.zone_url(zone) + "/instances"
        )

    def do_instances_delete(self, p: dict[str, str], a: dict[str, str], b: Any) -> Any:
        return self.world.delete_instance(p["zone"], p["instance"])

    def do_instances_stop(self, p: dict[str, str], a: dict[str, str], b: Any) -> Any:
        return self.world.stop_instance(p["zone"], p["instance"])

    def do_instances_start(self, p: dict[str, str], a: dict[str, str], b: Any) -> Any:
        return self.world.start_instance(p["zone"], p["instance"])

    def do_instances_setLabels(self, p: dict[str, str], a: dict[str, str], b: Any) -> Any:
        return self.world.set_field(
            p["zone"], p["instance"], "labels", b, "labelFingerprint", "labels"
        )

    def do_instances_setMetadata(self, p: dict[str, str], a: dict[str, str], b: Any) -> Any:
        return self.world.set_field(p["zone"], p["instance"], "metadata", b, "fingerprint", "items")

    def do_instances_setTags(self, p: dict[str, str], a: dict[str, str], b: Any) -> Any:
        return self.world.set_field(p["zone"], p["instance"], "tags", b, "fingerprint", "items")

    def do_zoneOperations_get(self, p: dict[str, str], a: dict[str, str], b: Any) -> Any:
        return self.world.get_op(p["operation"], self.world.check_zone(p["zone"]))

    def do_zoneOperations_wait(self, p: dict[str, str], a: dict[str, str], b: Any) -> Any:
        return self.world.wait_op(p["operation"], self.world.check_zone(p["zone"]))

    def do_zoneOperations_list(self, p: dict[str, str], a: dict[str, str], b: Any) -> Any:
        zone_url = self.world.zone_url(self.world.check_zone(p["zone"]))
        ops = [o for o in self.world.operations.values() if o.get("zone") == zone_url]
        return self._list("compute#operationList", ops, a, "Operation", zone_url + "/operations")

    def do_globalOperations_get(self, p: dict[str, str], a: dict[str, str], b: Any) -> Any:
        return self.world.get_op(p["operation"], None)

    def do_globalOperations_wait(self, p: dict[str, str], a: dict[str, str], b: Any) -> Any:
        return self.world.wait_op(p["operation"], None)

    def do_firewalls_insert(self, p: dict[str, str], a: dict[str, str], b: Any) -> Any:
        return self.world.insert_firewall(b)

    def do_firewalls_get(self, p: dict[str, str], a: dict[str, str], b: Any) -> Any:
        return self.world.firewall(p["firewall"])

    def do_firewalls_list(self, p: dict[str, str], a: dict[str, str], b: Any) -> Any:
        return self._list(
            "compute#firewallList",
            list(self.world.firewalls.values()),
            a,
            "Firewall",
            self.world.url("global", "firewalls"),
        )

    def do_firewalls_patch(self, p: dict[str, str], a: dict[str, str], b: Any) -> Any:
        return self.world.patch_firewall(p["firewall"], b)

    def do_firewalls_delete(self, p: dict[str, str], a: dict[str, str], b: Any) -> Any:
        return self.world.delete_firewall(p["firewall"])

    # --- test controls ----------------------------------------------------------------

    def control(self, verb: str, what: str, body: Any) -> Any:
        w = self.world
        if what.startswith("gcs/"):
            return self.gcs.control(verb, what, body)
        with w.lock:
            if what == "inject" and verb == "POST":
                w.injections.append(dict(body))
                return {"injections": w.injections}
            if what == "clear" and verb == "POST":
                w.injections.clear()
                return {}
            if what == "preempt" and verb == "POST":
                return w.preempt(body["zone"], body["instance"])
            if what == "instances" and verb == "GET":
                return {"instances": [
                    {"name": i["name"], "zone": z, "status": i["status"], "labels": i["labels"],
                     "slot": w.private[i["id"]]["slot"],
                     "disk": str(w.private[i["id"]]["disk"]),
                     "networkIP": i["networkInterfaces"][0].get("networkIP"),
                     "natIP": (i["networkInterfaces"][0].get("accessConfigs") or [{}])[0].get("natIP")}
                    for (z, _), i in sorted(w.instances.items())]}  # fmt: skip
            if what == "inserts" and verb == "GET":
                return {"inserts": w.inserts}
            if what == "firewalls" and verb == "GET":
                return {"firewalls": list(w.firewalls.values())}
            if what == "revoke" and verb == "POST":
                self.revoked = bool(body.get("revoked", True))
                self.tokens.clear()
                return {}
            if what == "stats" and verb == "GET":
                return {"token_requests": self.token_requests}
            if what == "reset" and verb == "POST":
                w.reset()
                with self.gcs.lock:
                    self.gcs.reset()
                self.revoked = False
                return {}
        raise ApiError(404, f"no fake control {verb} {what}", "notFound")


def make_handler(fake: FakeGce) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            print(f"{self.command} {self.path} -> {args[1] if len(args) > 1 else ''}", flush=True)

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                data = bytearray()
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return bytes(data)
                    data.extend(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _reply(self, reply: Any) -> None:
            self.send_response(reply.status)
            for key, value in reply.headers.items():
                if key.lower() != "content-length":
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)

        def _handle(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            raw = self._body()
            try:
                if url.path.startswith(STORAGE_PREFIXES):
                    scopes = fake.scopes(self.headers.get("Authorization"))
                    self._reply(fake.gcs.handle(self.command, url, self.headers, raw, scopes))
                    return
                if url.path == "/token" and self.command == "POST":
                    self._send(*fake.issue_token(urllib.parse.parse_qs(raw.decode())))
                    return
                try:
                    body = json.loads(raw) if raw.strip() else None
                except ValueError as exc:
                    raise ApiError(400, f"Invalid JSON payload received. {exc}") from None
                if url.path.startswith("/_fake/"):
                    self._send(200, fake.control(self.command, url.path[7:], body or {}))
                    return
                if not url.path.startswith(discovery.SERVICE_PATH):
                    raise ApiError(404, f"The requested URL {url.path} was not found.", "notFound")
                fake.authorize(self.headers.get("Authorization"))
                query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
                result = fake.compute(self.command, url.path[len(discovery.SERVICE_PATH):],
                                      query, body)  # fmt: skip
                self._send(200, result)
            except ApiError as exc:
                self._send(exc.status, exc.body())

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

    return Handler


def serve(port: int = 0) -> ThreadingHTTPServer:
    """A server bound on loopback; its handler (``make_handler``) is set once the fake exists
    (the fake's URLs need the port)."""
    server = ThreadingHTTPServer(("127.0.0.1", port), BaseHTTPRequestHandler)
    server.daemon_threads = True
    return server
