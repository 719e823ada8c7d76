"""The TLS pair check of ``serve up`` (:mod:`skyhop_core.serve.tls`), without a server:
what a direct HTTP caller or a bad file gets. The HTTPS endpoint itself is tested in
test_serve_local.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from servecalls import make_tls

from skyhop_core.exceptions import TaskValidationError
from skyhop_core.models.service_spec import TlsConfig
from skyhop_core.serve import tls

pytest.importorskip("cryptography")


def _resolver(files: dict[str, Path]):  # type: ignore[no-untyped-def]
    return lambda upload_id: files[upload_id]


def test_client_paths_are_refused_and_a_good_pair_loads(tmp_path: Path) -> None:
    _, key, cert = make_tls(tmp_path)
    with pytest.raises(TaskValidationError, match="service.tls.keyfile: 'key.pem' is a path "
                                                  "on the client's machine"):
        tls.check_refs(TlsConfig(keyfile="key.pem", certfile="skyhop-upload://c"))
    pair = TlsConfig(keyfile="skyhop-upload://k", certfile="skyhop-upload://c")
    files = tls.load(_resolver({"k": key, "c": cert}), pair)
    assert files.key == key.read_bytes() and files.cert == cert.read_bytes()


def test_an_encrypted_key_or_a_directory_is_named(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    _, key, cert = make_tls(tmp_path)
    private = serialization.load_pem_private_key(key.read_bytes(), None)
    locked = tmp_path / "locked.pem"
    locked.write_bytes(private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret")))
    pair = TlsConfig(keyfile="skyhop-upload://k", certfile="skyhop-upload://c")
    with pytest.raises(TaskValidationError, match="service.tls.keyfile: 'locked.pem' is an encrypted key"):
        tls.load(_resolver({"k": locked, "c": cert}), pair)
    with pytest.raises(TaskValidationError, match="service.tls.keyfile: the upload is a "
                                                  "directory"):
        tls.load(_resolver({"k": tmp_path, "c": cert}), pair)


def test_the_sdk_uploads_tls_files_for_serve_requests_only() -> None:
    from skyhop.uploads import needs_upload

    body = {"task": {"run": "x", "service": {"readiness_probe": "/",
                                             "tls": {"keyfile": "k.pem", "certfile": "c.pem"}}}}
    assert needs_upload("serve_up", body) and needs_upload("serve_update", body)
    assert not needs_upload("launch", body)  # a launch ignores service:, and its files
