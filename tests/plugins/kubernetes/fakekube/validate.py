"""Checking manifests the way the API server would, before they are stored.

With ``kubernetes-validate`` installed (the test extra), every manifest is validated
against the official OpenAPI schema of the fake's Kubernetes version (strict: unknown
fields are errors, as ``kubectl --validate=strict`` and server-side field validation
make them). Without it, the fields the API requires are checked by hand. Either way a
bad manifest is ``422 Invalid`` naming the field.
"""

from __future__ import annotations

import re
from typing import Any

from .store import ApiError

KUBE_VERSION = "1.32.0"
KINDS = {"pods": "Pod", "services": "Service", "namespaces": "Namespace", "nodes": "Node"}
NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

try:
    import kubernetes_validate
except ImportError:  # pragma: no cover - the test extra installs it
    kubernetes_validate = None


def _invalid(kind: str, name: str, message: str) -> ApiError:
    return ApiError(422, "Invalid", f'{KINDS[kind]} "{name}" is invalid: {message}',
                    name=name, kind=kind)  # fmt: skip


def check(kind: str, body: dict[str, Any]) -> None:
    meta = body.get("metadata") or {}
    name = str(meta.get("name") or meta.get("generateName") or "")
    if not name:
        raise _invalid(kind, "", "metadata.name: Required value: name or generateName is required")
    if len(name) > 63 or not NAME.match(name.rstrip("-") if meta.get("generateName") else name):
        raise _invalid(
            kind,
            name,
            f"metadata.name: Invalid value: {name!r}: a lowercase RFC "
            "1123 label must consist of lower case alphanumeric characters or '-'",
        )
    for key, value in (meta.get("labels") or {}).items():
        if not isinstance(value, str) or len(value) > 63:
            raise _invalid(kind, name, f"metadata.labels: Invalid value: {value!r} ({key})")
    if kubernetes_validate is not None:
        full = {"apiVersion": "v1", "kind": KINDS[kind], **body}
        try:
            kubernetes_validate.validate(full, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            raise _invalid(kind, name, f"{path}: {exc.message}") from None
        except kubernetes_validate.SchemaNotFoundError as exc:  # pragma: no cover
            raise ApiError(500, "InternalError", str(exc)) from None
    if kind == "pods":
        containers = (body.get("spec") or {}).get("containers") or []
        if not containers:
            raise _invalid(kind, name, "spec.containers: Required value")
        for i, c in enumerate(containers):
            for field in ("name", "image"):
                if not c.get(field):
                    raise _invalid(kind, name, f"spec.containers[{i}].{field}: Required value")
