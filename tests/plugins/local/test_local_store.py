"""The ``local`` store passes the store conformance check on disk."""

from __future__ import annotations

from pathlib import Path

import trio

from skyhop_core.context import BackendContext
from skyhop_core.plugins import load_backends
from skyhop_core.storage.stores import Stores
from skyhop_core.testing.stores import check_store


def test_local_store_conformance(tmp_path: Path) -> None:
    stores = Stores(load_backends().pm)
    assert "local" in stores.names()
    state = tmp_path / "persist" / "stores" / "local"
    ctx = BackendContext(state_dir=str(state), persistent_path=str(tmp_path / "persist"))
    assert stores.implements("local", "skyhop_store_exists")  # optional: ours have it
    bucket = trio.run(check_store, stores, "local", ctx, tmp_path)
    assert not (state / bucket.name).exists()  # deleted with everything in it


def test_an_unknown_store_names_the_installed_ones() -> None:
    import pytest

    from skyhop_core.exceptions import NotSupportedError

    with pytest.raises(NotSupportedError, match="installed stores: .*local"):
        Stores(load_backends().pm).info("azure")
