"""The fake Cloud Storage JSON API (``storage.v1``), served by the same process as Compute.

Routes, query parameters and bodies come from Google's ``storage.v1`` discovery document
(:mod:`fakegce.discovery`): an unknown parameter or field is a 400, as on the real API.
Served paths, as Google's clients use them:

- ``/storage/v1/b[/{bucket}[/o[/{object}]]]``: buckets insert/get/list/delete, objects
  get (``alt=media`` for the bytes, with ``Range``), list (``prefix``, ``delimiter``,
  ``pageToken``, ``maxResults``) and delete. Object names are URL-encoded in the path.
- ``/download/storage/v1/b/{bucket}/o/{object}?alt=media``: an object's ``mediaLink``.
- ``/upload/storage/v1/b/{bucket}/o``: ``uploadType=media`` (bytes, ``name=``),
  ``multipart`` (``multipart/related``: the Object JSON, then the bytes) and
  ``resumable`` (the metadata starts a session whose URI is in ``Location``; chunks are
  PUT with ``Content-Range``; an unfinished session answers 308 with the ``Range`` held).

Bucket names follow GCS's rules (3-63 characters of ``a-z 0-9 - _ .``, starting and
ending with a letter or digit, no ``goog`` prefix, no IP address); others are 400
``Invalid bucket name``. Auth is the Compute fake's (bearer tokens from ``/token``), with
the ``devstorage`` scopes accepted too.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import itertools
import json
import re
import secrets
import threading
import urllib.parse
from typing import Any

import attrs

from fakegce import discovery
from fakegce.discovery import STORAGE, ApiError
from fakegce.world import now_rfc3339

SCOPES = {"https://www.googleapis.com/auth/cloud-platform",
          "https://www.googleapis.com/auth/devstorage.full_control",
          "https://www.googleapis.com/auth/devstorage.read_write"}  # fmt: skip
READ_SCOPES = SCOPES | {"https://www.googleapis.com/auth/devstorage.read_only",
                       "https://www.googleapis.com/auth/cloud-platform.read-only"}  # fmt: skip
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*[a-z0-9]")


@attrs.define
class Reply:
    """What the HTTP handler sends: a status, a body and its headers."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = attrs.field(factory=dict)

    @classmethod
    def json(cls, value: Any, status: int = 200) -> Reply:
        return cls(status, json.dumps(value).encode(), {"Content-Type": "application/json"})


def check_bucket_name(name: str) -> None:
    """GCS's naming rules; a 400 like the real one for a name it refuses."""
    parts = name.split(".")
    ok = (
        3 <= len(name) <= 222 and BUCKET_NAME.fullmatch(name) is not None
        and all(0 < len(p) <= 63 for p in parts) and (len(parts) > 1 or len(name) <= 63)
        and not name.startswith("goog") and "google" not in name
    )  # fmt: skip
    try:
        ipaddress.ip_address(name)
        ok = False
    except ValueError:
        pass
    if not ok:
        raise ApiError(400, f"Invalid bucket name: '{name}'", "invalid")


def _no_bucket() -> ApiError:
    return ApiError(404, "The specified bucket does not exist.", "notFound")


class FakeGcs:
    """Buckets and objects of one project, under one lock."""

    def __init__(self, project: str, base: str) -> None:
        self.project, self.base = project, base
        self.lock = threading.Lock()
        self.generations = itertools.count(1_700_000_000_000_000)
        self.reset()

    def reset(self) -> None:
        self.buckets: dict[str, dict[str, Any]] = {}
        self.objects: dict[str, dict[str, tuple[dict[str, Any], bytes]]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.uploads: list[str] = []  # the uploadType of every upload, for tests

    # --- dispatch ----------------------------------------------------------------------

    def handle(self, verb: str, url: urllib.parse.SplitResult, headers: Any, raw: bytes,
               scopes: set[str]) -> Reply:  # fmt: skip
        """Answer one request below ``/storage``, ``/upload`` or ``/download``."""
        if not scopes & (READ_SCOPES if verb == "GET" else SCOPES):
            raise ApiError(403, "Request had insufficient authentication scopes.",
                           "insufficientPermissions")  # fmt: skip
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        path = url.path
        if path.startswith(("/upload/storage/v1/", "/resumable/upload/storage/v1/")):
            return self.upload(verb, path.split("/storage/v1/", 1)[1], query, headers, raw)
        media = path.startswith("/download/storage/v1/")
        route, params = discovery.match(verb, path.split("/storage/v1/", 1)[1], STORAGE)
        params = {k: urllib.parse.unquote(v) for k, v in params.items()}
        args = discovery.check_query(route, query)
        body = None
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError as exc:
                raise ApiError(400, f"Invalid JSON payload received. {exc}") from None
        discovery.check_body(route, body)
        if args.get("alt") == "media" or media:
            if route.method_id != "storage.objects.get":
                raise ApiError(400, f"{route.method_id} has no media download.")
            with self.lock:
                return self.download(params["bucket"], params["object"], headers.get("Range"))
        handler = getattr(self, "do_" + route.method_id.removeprefix("storage.").replace(".", "_"),
                          None)  # fmt: skip
        if handler is None:
            raise ApiError(501, f"{route.method_id} is a real method the fake does not "
                                "implement.", "notImplemented")  # fmt: skip
        with self.lock:
            result = handler(params, args, body)
        if result is None:
            return Reply(204)
        discovery.check_response(route, result)
        return Reply.json(result)

    # --- buckets -------------------------------------------------------------------------

    def _project(self, args: dict[str, str]) -> None:
        if args.get("project") != self.project:
            raise ApiError(403, f"The project {args.get('project')!r} does not exist or the "
                                "caller may not use it.", "forbidden")  # fmt: skip

    def _bucket(self, name: str) -> dict[str, Any]:
        if name not in self.buckets:
            raise _no_bucket()
        return self.buckets[name]

    def do_buckets_insert(self, p: dict[str, str], a: dict[str, str], b: Any) -> Any:
        self._project(a)
        name = str(b.get("name") or "")
        check_bucket_name(name)
        if name in self.buckets:
            raise ApiError(409, "Your previous request to create the named bucket succeeded "
                                "and you already own it.", "conflict")  # fmt: skip
        now = now_rfc3339()
        self.buckets[name] = {
            "kind": "storage#bucket", "id": name, "name": name, "projectNumber": "4242",
            "selfLink": f"{self.base}/storage/v1/b/{name}", "metageneration": "1",
            "location": str(b.get("location") or "US").upper(), "etag": "CAE=",
            "storageClass": str(b.get("storageClass") or "STANDARD"), "locationType": "multi-region",
            "timeCreated": now, "updated": now,
        }  # fmt: skip
        self.objects[name] = {}
        return self.buckets[name]

    def do_buckets_get(self, p: dict[str, str], a: dict[str, str], b: Any) -> Any:
        return self._bucket(p["bucket"])

    def do_buckets_list(self, p: dict[str, str], a: dict[str, str], b: Any) -> Any:
        self._project(a)
        names = sorted(n for n in self.buckets if n.startswith(a.get("prefix", "")))
        page, token = _page(names, a)
        out: dict[str, Any] = {"kind": "storage#buckets", "items": [self.buckets[n] for n in page]}
        if token:
            out["nextPageToken"] = token
        return out

    def do_buckets_delete(self, p: dict[str, str], a: dict[str, str], b: Any) -> Any:
        self._bucket(p["bucket"])
        if self.objects[p["bucket"]]:
            raise ApiError(409, "The bucket you tried to delete is not empty.", "conflict")
        del self.buckets[p["bucket"]], self.objects[p["bucket"]]
        return None

    # --- objects -------------------------------------------------------------------------

    def _object(self, bucket: str, name: str) -> tuple[dict[str, Any], bytes]:
        self._bucket(bucket)
        found = self.objects[bucket].get(name)
        if found is None:
            raise ApiError(404, f"No such object: {bucket}/{name}", "notFound")
        return found

    def do_objects_get(self, p: dict[str, str], a: dict[str, str], b: Any) -> Any:
        return self._object(p["bucket"], p["object"])[0]

    def do_objects_delete(self, p: dict[str, str], a: dict[str, str], b: Any) -> Any:
        self._object(p["bucket"], p["object"])
        del self.objects[p["bucket"]][p["object"]]
        return None

    def do_objects_list(self, p: dict[str, str], a: dict[str, str], b: Any) -> Any:
        self._bucket(p["bucket"])
        prefix, delimiter = a.get("prefix", ""), a.get("delimiter", "")
        entries: dict[str, bool] = {}  # name -> is a prefix
        for name in self.objects[p["bucket"]]:
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix):]
            if delimiter and delimiter in rest:
                entries[prefix + rest.split(delimiter, 1)[0] + delimiter] = True
            else:
                entries[name] = False
        page, token = _page(sorted(entries), a, default=1000)
        out: dict[str, Any] = {"kind": "storage#objects",
                               "items": [self.objects[p["bucket"]][n][0] for n in page if not entries[n]],
                               "prefixes": [n for n in page if entries[n]]}  # fmt: skip
        if token:
            out["nextPageToken"] = token
        return out

    def store(self, bucket: str, meta: dict[str, Any], data: bytes) -> dict[str, Any]:
        """Write an object (replacing one of the same name); its resource."""
        self._bucket(bucket)
        name = str(meta.get("name") or "")
        if not name or len(name.encode()) > 1024 or "\n" in name or "\r" in name:
            raise ApiError(400, f"The object name {name!r} is not valid.", "invalid")
        generation = str(next(self.generations))
        quoted = urllib.parse.quote(name, safe="")
        now = now_rfc3339()
        resource = {
            **{k: v for k, v in meta.items() if k in ("contentType", "metadata", "cacheControl",
                                                      "contentEncoding", "contentDisposition")},
            "kind": "storage#object", "id": f"{bucket}/{name}/{generation}", "name": name,
            "bucket": bucket, "generation": generation, "metageneration": "1",
            "contentType": str(meta.get("contentType") or "application/octet-stream"),
            "selfLink": f"{self.base}/storage/v1/b/{bucket}/o/{quoted}",
            "mediaLink": f"{self.base}/download/storage/v1/b/{bucket}/o/{quoted}"
                         f"?generation={generation}&alt=media",
            "size": str(len(data)), "storageClass": "STANDARD", "etag": "CAE=",
            "md5Hash": base64.b64encode(hashlib.md5(data).digest()).decode(),
            "timeCreated": now, "updated": now, "timeStorageClassUpdated": now,
        }  # fmt: skip
        self.objects[bucket][name] = (resource, data)
        return resource

    def download(self, bucket: str, name: str, range_header: str | None) -> Reply:
        resource, data = self._object(bucket, name)
        headers = {"Content-Type": str(resource["contentType"]),
                   "X-Goog-Generation": str(resource["generation"])}  # fmt: skip
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", range_header or "")
        if not m or (not m.group(1) and not m.group(2)):
            return Reply(200, data, headers)
        if m.group(1):
            start, end = int(m.group(1)), int(m.group(2) or len(data) - 1)
        else:  # the last N bytes
            start, end = max(len(data) - int(m.group(2)), 0), len(data) - 1
        if start >= len(data):
            return Reply(416, b"", {"Content-Range": f"bytes */{len(data)}"})
        end = min(end, len(data) - 1)
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        return Reply(206, data[start : end + 1], headers)

    # --- uploads -------------------------------------------------------------------------

    def upload(self, verb: str, rest: str, query: dict[str, list[str]], headers: Any,
               raw: bytes) -> Reply:  # fmt: skip
        m = re.fullmatch(r"b/([^/]+)/o", rest)
        if m is None:
            raise ApiError(404, f"The requested URL /upload/storage/v1/{rest} was not found.",
                           "notFound")  # fmt: skip
        bucket = urllib.parse.unquote(m.group(1))
        route, _ = discovery.match("POST", f"b/{m.group(1)}/o", STORAGE)
        if "upload_id" in query:
            return self._resumable_chunk(verb, query["upload_id"][-1], headers, raw)
        if verb != "POST":
            raise ApiError(405, f"Method {verb} is not allowed on an upload without upload_id.")
        args = discovery.check_query(route, query)
        kind = args.get("uploadType", "")
        content_type = headers.get("Content-Type") or ""
        if kind == "media":
            if not args.get("name"):
                raise ApiError(400, "Required parameter 'name' is missing.", "required")
            meta: dict[str, Any] = {"name": args["name"], "contentType": content_type}
            data = raw
        elif kind == "multipart":
            meta, data = _multipart(content_type, raw)
            discovery.check_body(route, meta)
            meta.setdefault("name", args.get("name"))
        elif kind == "resumable":
            meta = json.loads(raw) if raw.strip() else {}
            discovery.check_body(route, meta)
            meta.setdefault("name", args.get("name"))
            with self.lock:
                self._bucket(bucket)
                upload_id = secrets.token_urlsafe(16)
                self.sessions[upload_id] = {"bucket": bucket, "meta": meta, "data": bytearray()}
                self.uploads.append("resumable")
            location = f"{self.base}/upload/storage/v1/b/{m.group(1)}/o?uploadType=resumable&upload_id={upload_id}"
            return Reply(200, b"", {"Location": location})
        else:
            raise ApiError(400, f"uploadType {kind!r} is not one of media, multipart, resumable.")
        with self.lock:
            self.uploads.append(kind)
            return Reply.json(self.store(bucket, meta, data))

    def _resumable_chunk(self, verb: str, upload_id: str, headers: Any, raw: bytes) -> Reply:
        with self.lock:
            session = self.sessions.get(upload_id)
            if session is None or verb not in ("PUT", "POST"):
                raise ApiError(404, "No such upload session.", "notFound")
            held = session["data"]
            spec = headers.get("Content-Range") or f"bytes 0-{len(raw) - 1}/{len(raw)}"
            m = re.fullmatch(r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)", spec.strip())
            if m is None:
                raise ApiError(400, f"Invalid Content-Range {spec!r}.")
            if m.group(1) is not None:
                if int(m.group(1)) != len(held) or int(m.group(2)) - int(m.group(1)) + 1 != len(raw):
                    raise ApiError(400, f"Content-Range {spec!r} does not follow the "
                                        f"{len(held)} bytes received.")  # fmt: skip
                held.extend(raw)
            total = m.group(3)
            if total == "*" or int(total) > len(held):
                reply = Reply(308, b"", {"Content-Length": "0"})
                if held:
                    reply.headers["Range"] = f"bytes=0-{len(held) - 1}"
                return reply
            del self.sessions[upload_id]
            return Reply.json(self.store(session["bucket"], session["meta"], bytes(held)))

    # --- test controls -------------------------------------------------------------------

    def control(self, verb: str, what: str, body: Any) -> Any:
        with self.lock:
            if what == "gcs/put" and verb == "POST":  # a bucket (made if missing) and objects
                name = str(body["bucket"])
                if name not in self.buckets:
                    self.do_buckets_insert({}, {"project": self.project}, {"name": name})
                for key, text in (body.get("objects") or {}).items():
                    self.store(name, {"name": key}, str(text).encode())
                return {}
            if what == "gcs/state" and verb == "GET":
                return {"buckets": {b: {n: d.decode(errors="replace") for n, (_, d) in objs.items()}
                                    for b, objs in self.objects.items()},
                        "uploads": self.uploads}  # fmt: skip
        raise ApiError(404, f"no fake control {verb} {what}", "notFound")


def _page(names: list[str], a: dict[str, str], default: int = 1000) -> tuple[list[str], str]:
    """One page of sorted ``names`` after ``pageToken`` (the last name of the page before)."""
    after = base64.urlsafe_b64decode(a["pageToken"]).decode() if a.get("pageToken") else None
    rest = [n for n in names if after is None or n > after]
    size = max(1, min(int(a.get("maxResults") or default), default))
    page = rest[:size]
    token = base64.urlsafe_b64encode(page[-1].encode()).decode() if len(rest) > size else ""
    return page, token


def _multipart(content_type: str, raw: bytes) -> tuple[dict[str, Any], bytes]:
    """The Object JSON and the bytes of a ``multipart/related`` upload body."""
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.startswith("multipart/related") or m is None:
        raise ApiError(400, f"A multipart upload needs Content-Type multipart/related with a "
                            f"boundary, not {content_type!r}.")  # fmt: skip
    delimiter = b"--" + m.group(1).encode()
    chunks = raw.split(delimiter)
    parts = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk.removeprefix(b"\r\n")  # the line break after the delimiter
        # headers, a blank line, the payload, and the line break before the next delimiter
        payload = chunk[2:] if chunk.startswith(b"\r\n") else chunk.partition(b"\r\n\r\n")[2]
        parts.append(payload.removesuffix(b"\r\n"))
    if len(parts) != 2:
        raise ApiError(400, f"A multipart upload has 2 parts (metadata, media), not {len(parts)}.")
    try:
        meta = json.loads(parts[0])
    except ValueError as exc:
        raise ApiError(400, f"Invalid JSON payload received. {exc}") from None
    if not isinstance(meta, dict):
        raise ApiError(400, "Invalid JSON payload received. Expected an object.")
    return meta, parts[1]
