"""The exceptions a skyhop user can see, in one hierarchy.

::

    SkyhopError
    ├── ClusterDoesNotExist
    ├── ClusterNotUpError
    ├── ClusterOwnerIdentityMismatchError
    ├── InvalidClusterNameError
    ├── NotSupportedError
    ├── UnknownBackendError               no installed plugin provides that backend
    ├── ResourcesUnavailableError        (carries ``failover_history``)
    │   ├── CapacityError                 a zone/region has no capacity now: try elsewhere
    │   └── QuotaError                    the account's quota is exhausted there
    ├── ResourcesMismatchError
    ├── CredentialsError                  the backend cannot authenticate
    ├── CommandError                      a command on a node failed (``returncode``)
    ├── JobNotFoundError
    ├── ServiceNotFoundError              no such service (or replica) of yours
    ├── RequestNotFoundError / AmbiguousRequestIdError
    ├── RequestCancelledError
    ├── ServerRestartedError              the request was running when its server died
    ├── ClusterLeaseLostError             another replica took over a cluster mid-operation
    ├── ApiServerError                    the client cannot reach or talk to the server
    │   └── ApiVersionMismatchError
    ├── NotAuthenticatedError             a deployed server needs a valid bearer token (401)
    ├── PermissionDeniedError             the caller may not do that (403)
    ├── UploadNotFoundError               no such upload of yours (404)
    ├── UploadTooLargeError               the files exceed the server's upload limit (413)
    ├── StorageError                      a bucket cannot be created, filled, mounted, found
    └── TaskValidationError (also a ValueError)

Every exception crosses the HTTP API as ``{"type": <class name>, "message": ..., "args":
{...}}`` (see :mod:`skyhop_core.wire`), so the SDK raises the same type the server raised.
Errors a backend raises while provisioning carry the place they apply to (``backend``,
``region``, ``zone``) so the optimizer knows what to block before it fails over.
"""

from __future__ import annotations

from typing import Any


def innermost(exc: BaseException) -> BaseException:
    """``exc``, or what a group of one (a nursery's) holds, however deeply nested."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def reason_of(exc: BaseException) -> str:
    """``Type: message`` of an error for a failure reason, looking inside groups of one."""
    exc = innermost(exc)
    return f"{type(exc).__name__}: {exc}"


class SkyhopError(Exception):
    """Base of every error skyhop raises on purpose; its message is meant for users."""

    #: Extra fields that travel with the error over the wire (names of attributes).
    wire_fields: tuple[str, ...] = ()

    def __init__(self, message: str = "", **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        for name in self.wire_fields:
            setattr(self, name, fields.pop(name, None))
        if fields:
            raise TypeError(f"unexpected fields for {type(self).__name__}: {sorted(fields)}")

    def __str__(self) -> str:
        return self.message

    def wire_args(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.wire_fields}


class ClusterDoesNotExist(SkyhopError):
    """The named cluster is not in the state store."""


class ClusterNotUpError(SkyhopError):
    """The operation needs the cluster UP; it is INIT or STOPPED."""

    wire_fields = ("cluster_status",)
    cluster_status: str | None


class ClusterOwnerIdentityMismatchError(SkyhopError):
    """The cluster belongs to another user."""


class InvalidClusterNameError(SkyhopError):
    """A cluster name does not match the allowed pattern."""


class BodyTooLargeError(SkyhopError):
    """A request body is larger than the API server accepts (HTTP 413)."""


class NotSupportedError(SkyhopError):
    """The backend or the cluster does not support the operation."""


class UnknownBackendError(SkyhopError):
    """No plugin provides the backend named in ``infra``."""


class ResourcesUnavailableError(SkyhopError):
    """No offer satisfies the request, or every candidate failed to provision.

    ``failover_history`` lists, in order, one line per attempt that failed (place,
    instance type, reason); ``attempts`` the same as dicts with the keys ``backend``,
    ``region``, ``zone``, ``instance_type``, ``error`` (``"CapacityError"`` or
    ``"QuotaError"``) and ``reason``. A launch whose every attempt ran out of capacity
    raises :class:`CapacityError`, every one out of quota :class:`QuotaError`.
    """

    wire_fields = ("failover_history", "attempts", "backend", "region", "zone")
    failover_history: list[str]
    attempts: list[dict[str, Any]]
    backend: str | None
    region: str | None
    zone: str | None

    def __init__(self, message: str = "", **fields: Any) -> None:
        super().__init__(message, **fields)
        if self.failover_history is None:
            self.failover_history = []
        if self.attempts is None:
            self.attempts = []


class TooManyNodesError(ResourcesUnavailableError):
    """A task asks for more nodes than the backend allows (its ``max_nodes``)."""


class CapacityError(ResourcesUnavailableError):
    """The place (backend/region/zone) has no capacity right now; another may."""


class QuotaError(ResourcesUnavailableError):
    """The account's quota is exhausted in that place."""


class ResourcesMismatchError(SkyhopError):
    """An existing cluster cannot satisfy the resources asked for."""


class CredentialsError(SkyhopError):
    """The backend's credentials are missing or rejected."""


class CommandError(SkyhopError):
    """A command on a cluster node failed."""

    wire_fields = ("returncode", "command", "detail")
    returncode: int | None
    command: str | None
    detail: str | None


class JobNotFoundError(SkyhopError):
    """No job with that ID on the cluster."""


class ServiceNotFoundError(SkyhopError):
    """No service (or replica) of that name/ID among the caller's."""


class RequestNotFoundError(SkyhopError):
    """No request matches the ID or prefix."""


class AmbiguousRequestIdError(SkyhopError):
    """A request ID prefix matches several requests; ``matches`` lists them."""

    wire_fields = ("matches",)
    matches: list[str] | None


class RequestCancelledError(SkyhopError):
    """The request was cancelled before it finished."""


class ClusterLeaseLostError(SkyhopError):
    """An API server lost a cluster's lease mid-operation (it paused for longer than the
    lease, and another replica took the cluster over); the operation stopped."""


class ServerRestartedError(SkyhopError):
    """The request was running when its API server stopped; it did not finish."""


class ApiServerError(SkyhopError):
    """The client could not reach the API server, or the server answered nonsense."""


class ApiVersionMismatchError(ApiServerError):
    """The client and the server speak incompatible API versions."""


class NotAuthenticatedError(SkyhopError):
    """A deployed API server got no token, or an unknown or revoked one (HTTP 401)."""


class PermissionDeniedError(SkyhopError):
    """The caller is known but may not do this, e.g. cancel another user's request (403)."""


class TaskValidationError(SkyhopError, ValueError):
    """A task YAML or a Task/Resources argument is invalid.

    ``source`` is the file (or ``<task>``), ``field`` the dotted path of the bad field,
    ``value`` its repr, ``suggestion`` the closest valid field name for a typo.
    """

    wire_fields = ("source", "field", "value", "suggestion")
    source: str | None
    field: str | None
    value: str | None
    suggestion: str | None


class UploadNotFoundError(SkyhopError):
    """The caller has no upload (or blob) with that ID; another user's uploads are never
    visible. HTTP 404."""


class UploadTooLargeError(SkyhopError):
    """A workdir or file mount is larger than the server's upload limit (HTTP 413).

    ``limit`` and ``total`` are byte counts; the message names the biggest files.
    """

    wire_fields = ("limit", "total")
    limit: int | None
    total: int | None


class StorageError(SkyhopError):
    """A storage bucket could not be created, filled, mounted or deleted, or the caller
    has no bucket of that name (another user's buckets are never visible)."""


def all_error_types() -> dict[str, type[SkyhopError]]:
    """Every SkyhopError subclass by name, for decoding errors that crossed the wire."""
    found: dict[str, type[SkyhopError]] = {}
    pending: list[type[SkyhopError]] = [SkyhopError]
    while pending:
        cls = pending.pop()
        found[cls.__name__] = cls
        pending.extend(cls.__subclasses__())
    return found
