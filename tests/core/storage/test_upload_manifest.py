"""The upload manifest: validation a hostile client cannot get past, and stable IDs."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skyhop_core.storage import manifest as mf

SHA = hashlib.sha256(b"x").hexdigest()


def file_entry(path: str, size: int = 1, **extra: Any) -> dict[str, Any]:
    return {"path": path, "type": "file", "size": size, "sha256": SHA, **extra}


def test_normalise_sorts_entries_and_keeps_only_the_executable_bit() -> None:
    manifest = mf.normalise(
        {"kind": "dir", "entries": [
            file_entry("b/run.sh", executable=True, mode=0o4755),
            {"path": "b", "type": "dir"},
            {"path": "a", "type": "symlink", "target": "b/run.sh"},
        ]}
    )  # fmt: skip
    assert [e["path"] for e in manifest["entries"]] == ["a", "b", "b/run.sh"]
    assert manifest["entries"][2] == file_entry("b/run.sh", executable=True)  # no mode


@pytest.mark.parametrize(
    ("entries", "needle"),
    [
        ([file_entry("../etc/passwd")], "without '.' or '..'"),
        ([file_entry("/etc/passwd")], "must be relative"),
        ([file_entry("a//b")], "must be relative"),
        ([file_entry("a"), file_entry("a")], "more than once"),
        # A file below a symlink would be written wherever the link points.
        ([{"path": "d", "type": "symlink", "target": "/etc"}, file_entry("d/passwd")],
         "lies below 'd'"),
        ([file_entry("f"), file_entry("f/g")], "lies below 'f'"),
        ([{"path": "x", "type": "file", "size": -1, "sha256": SHA}], "size"),
        ([{"path": "x", "type": "file", "size": 1, "sha256": "../../x"}], "sha256"),
        ([{"path": "x", "type": "fifo"}], "type"),
    ],
)
def test_hostile_manifests_are_refused_naming_the_entry(entries: list[Any], needle: str) -> None:
    with pytest.raises(mf.ManifestError, match="entries") as info:
        mf.normalise({"kind": "dir", "entries": entries})
    assert needle in str(info.value)


def test_a_file_manifest_holds_exactly_one_file_by_its_base_name() -> None:
    assert mf.normalise({"kind": "file", "entries": [file_entry("a.txt")]})["kind"] == "file"
    for entries in ([], [file_entry("a"), file_entry("b")], [file_entry("d/a")]):
        with pytest.raises(mf.ManifestError, match="exactly one file"):
            mf.normalise({"kind": "file", "entries": entries})


names = st.text(alphabet="abc._-", min_size=1, max_size=4)
paths = st.lists(names, min_size=1, max_size=3).map("/".join)


@given(st.lists(paths, min_size=1, max_size=8, unique=True), st.randoms())
def test_upload_id_does_not_depend_on_entry_order(path_list: list[str], rnd: Any) -> None:
    entries = [file_entry(p) for p in path_list]
    try:
        first = mf.normalise({"kind": "dir", "entries": entries})
    except mf.ManifestError:
        return  # e.g. "a" and "a/b" both files, or a "." part: refused either way
    shuffled = list(entries)
    rnd.shuffle(shuffled)
    second = mf.normalise({"kind": "dir", "entries": shuffled})
    assert mf.upload_id(first) == mf.upload_id(second)
    for entry in first["entries"]:  # whatever is accepted stays inside the tree
        assert not entry["path"].startswith("/")
        assert ".." not in entry["path"].split("/")


def test_biggest_files_and_sizes() -> None:
    manifest = mf.normalise(
        {"kind": "dir", "entries": [file_entry("small", 10), file_entry("big", 3 << 20)]}
    )
    assert mf.total_bytes(manifest) == 10 + (3 << 20)
    assert [e["path"] for e in mf.biggest(manifest, 1)] == ["big"]
    assert mf.human_bytes(3 << 20) == "3.0 MiB" and mf.human_bytes(10) == "10 B"
