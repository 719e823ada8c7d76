"""TLS for a service's load balancer (``service.tls: {keyfile, certfile}``).

The files are on the client's machine: the SDK uploads each one (like a file mount)
and the request names ``skyhop-upload://<id>``; the server never reads a client path.
``serve up`` / ``serve update`` check the pair before anything is written — both
uploads exist and are the caller's, and the certificate (chain) and key load together
as PEM — then keep them 0600 next to the version's secrets. The load balancer then
speaks HTTPS with them and the service's endpoint is ``https://``.

A service keeps the scheme it was started with: an update cannot add or remove
``tls``. New files in an update (a renewed certificate) are kept for that version and
the listening load balancer serves them to every new connection as soon as its
controller sees the version, on the same port; connections already open keep theirs.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import attrs

from skyhop_core.exceptions import TaskValidationError
from skyhop_core.models.service_spec import TlsConfig
from skyhop_core.storage import manifest as mf

SOURCE = "<request>"
FIELDS = ("keyfile", "certfile")


@attrs.frozen
class TlsFiles:
    """The PEM bytes of a service version's key and certificate."""

    key: bytes
    cert: bytes


def check_refs(tls: TlsConfig | None) -> None:
    """At submission: each file is an upload, never a path on the client's machine."""
    if tls is None:
        return
    for field in FIELDS:
        value = getattr(tls, field)
        if mf.parse_upload_ref(value) is None:
            raise TaskValidationError(
                f"service.tls.{field}: {value!r} is a path on the client's machine, which "
                "the API server never reads. The skyhop SDK and CLI upload it before "
                f"submitting; a direct HTTP caller uploads it (POST /api/uploads) and sends "
                f"{mf.UPLOAD_SCHEME}<upload_id>.",
                source=SOURCE, field=f"service.tls.{field}", value=value,
            )


def _error(message: str, value: str) -> TaskValidationError:
    return TaskValidationError(message, source=SOURCE, field="service.tls", value=value)


def load(resolve: Any, tls: TlsConfig) -> TlsFiles:
    """Read the uploaded pair (``resolve(upload_id) -> Path``; blocking) and check that
    the certificate and key load together; raises TaskValidationError saying which file
    is wrong and how."""
    check_refs(tls)
    paths: dict[str, Path] = {}
    for field in FIELDS:
        path = Path(resolve(mf.parse_upload_ref(getattr(tls, field)) or ""))
        if not path.is_file():
            raise _error(f"service.tls.{field}: the upload is a directory; name the "
                         "PEM file itself.", getattr(tls, field))
        paths[field] = path
    # Messages name the files as the user named them (an upload keeps the file's name).
    key_name, cert_name = paths["keyfile"].name, paths["certfile"].name

    def encrypted() -> bytes:  # never OpenSSL's prompt on the server's terminal
        raise _error(f"service.tls.keyfile: {key_name!r} is an encrypted key; give the "
                     "unencrypted PEM private key.", key_name)

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile=paths["certfile"], keyfile=paths["keyfile"],
                                password=encrypted)
    except (ssl.SSLError, ValueError) as exc:
        why = getattr(exc, "reason", None) or exc
        raise _error(
            f"service.tls: the certificate {cert_name!r} and key {key_name!r} cannot be used "
            f"together ({why}). certfile must be a PEM certificate (chain) and keyfile its "
            "unencrypted PEM private key.", f"{cert_name}, {key_name}",
        ) from None
    return TlsFiles(key=paths["keyfile"].read_bytes(), cert=paths["certfile"].read_bytes())
