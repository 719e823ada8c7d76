"""Storage: a bucket a task mounts or copies onto its nodes (SkyPilot's ``sky.Storage``).

A task YAML writes one as a ``file_mounts`` entry whose value is a mapping::

    file_mounts:
      /data:
        name: my-bucket          # optional when source is a bucket URI
        source: ./local-dir      # a local directory (uploaded), a bucket URI, or absent
        store: s3                # s3, gcs, local, ... (optional)
        mode: MOUNT              # MOUNT (default), COPY or MOUNT_CACHED
        persistent: true         # false: deleted with the cluster

A :class:`Storage` is immutable and always valid; ``to_yaml_config`` gives its canonical
mapping (only non-default fields), which parses back to an equal Storage. Whether its
store is available here is decided at launch, not at parse time. ``store: volume``
entries are SkyPilot's way of naming a volume from ``file_mounts``; they are kept as a
Storage whose ``stores`` is ``("volume",)``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from skyhop_core.models.validate import FieldError, check_keys, check_mapping, join_path

#: The store names SkyPilot knows (and ours, ``local``); others are refused at parse.
STORE_TYPES = ("s3", "gcs", "azure", "r2", "ibm", "oci", "nebius", "coreweave", "volume",
               "local")
#: Bucket URI schemes and the store each implies.
URI_STORES = {"s3": "s3", "gs": "gcs", "https": "azure", "r2": "r2", "cos": "ibm",
              "oci": "oci", "nebius": "nebius", "cw": "coreweave", "local": "local"}
YAML_KEYS = ("name", "source", "store", "mode", "persistent", "config")
_SOURCE = "<Storage>"


class StorageMode(enum.Enum):
    """How a node sees a bucket."""

    #: A FUSE mount: reads and writes go to the bucket.
    MOUNT = "MOUNT"
    #: The bucket's contents are downloaded onto each node before setup.
    COPY = "COPY"
    #: A FUSE mount with a local write-back cache (rclone's VFS cache).
    MOUNT_CACHED = "MOUNT_CACHED"


def bucket_uri_store(source: str) -> str | None:
    """The store a bucket URI names (``s3://b/p`` -> ``s3``), or None for a local path."""
    scheme, sep, _ = source.partition("://")
    return URI_STORES.get(scheme.lower()) if sep else None


def _mode(value: Any, field: str) -> StorageMode:
    if value is None:
        return StorageMode.MOUNT
    if isinstance(value, StorageMode):
        return value
    names = [m.value for m in StorageMode]
    if isinstance(value, str) and value.strip().upper() in names:
        return StorageMode(value.strip().upper())
    raise FieldError(field, value, "one of " + ", ".join(names))


def _store(value: Any, field: str) -> str:
    text = getattr(value, "value", value)  # a StoreType-like enum
    if isinstance(text, str) and text.strip().lower() in STORE_TYPES:
        return text.strip().lower()
    raise FieldError(field, value, "a store: one of " + ", ".join(STORE_TYPES))


def _stores(value: Any, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, Iterable):
        return (_store(value, field),)
    items = list(value)
    return tuple(dict.fromkeys(_store(v, join_path(field, i)) for i, v in enumerate(items)))


def _source(value: Any, field: str) -> str | tuple[str, ...] | None:
    if value is None:
        return None
    expected = "a local directory, a bucket URI (s3://..., gs://...) or a list of local paths"
    if isinstance(value, str):
        if not value.strip():
            raise FieldError(field, value, expected)
        return value
    if isinstance(value, list | tuple) and value:
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item.strip() or bucket_uri_store(item):
                raise FieldError(join_path(field, i), item, "a local path (a bucket URI is "
                                 "a source of its own)")
        return tuple(value)
    raise FieldError(field, value, expected)


def _name(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or "/" in value.strip():
        raise FieldError(field, value, "a bucket name (no '/')")
    return value.strip()


def _plain_config(value: Any, field: str) -> dict[str, Any] | None:
    if value is None:
        return None
    from skyhop_core.models.taskyaml import validate_plain

    check_mapping(value, field, "store settings (disk_size, storage_type, ...)")
    return validate_plain(value, field) or None


@attrs.frozen(init=False)
class Storage:
    """A bucket: its name, what fills it, which store holds it and how nodes see it.

    Args:
        name: the bucket's name; optional when ``source`` is a bucket URI (the URI's
            bucket is used) or a local directory (a name is made at launch).
        source: a local directory (uploaded into the bucket), a bucket URI such as
            ``s3://my-bucket/path``, a list of local paths, or None for an empty bucket.
        stores: the store(s) to use (``'s3'``, ``'gcs'``, ``'local'``, ...); None lets
            the source's URI or the server decide.
        persistent: False deletes the bucket when the cluster is torn down.
        mode: :class:`StorageMode` (or its name): MOUNT (default), COPY or MOUNT_CACHED.
        config: store settings (for ``store: volume``: ``disk_size``, ``storage_type``).

    Raises:
        TaskValidationError: an argument is invalid, or neither name nor source is given.
    """

    name: str | None = None
    source: str | tuple[str, ...] | None = None
    stores: tuple[str, ...] = ()
    persistent: bool = True
    mode: StorageMode = StorageMode.MOUNT
    config: dict[str, Any] | None = attrs.field(default=None, hash=False)

    def __init__(
        self,
        name: str | None = None,
        source: str | list[str] | tuple[str, ...] | None = None,
        stores: Any = None,
        persistent: bool | None = True,
        mode: StorageMode | str | None = StorageMode.MOUNT,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        try:
            fields = _normalise(name, source, stores, persistent, mode, config, "")
        except FieldError as err:
            raise err.to_task_error(_SOURCE) from None
        self.__attrs_init__(**fields)

    @property
    def is_volume(self) -> bool:
        """Whether this entry names a volume (``store: volume``), not a bucket."""
        return self.stores == ("volume",)

    @property
    def source_store(self) -> str | None:
        """The store the source URI names (``s3`` for ``s3://...``), if it is a URI."""
        return bucket_uri_store(self.source) if isinstance(self.source, str) else None

    @property
    def is_local_source(self) -> bool:
        """Whether ``source`` is a path on the client (to be uploaded)."""
        return self.source is not None and self.source_store is None and not (
            isinstance(self.source, str) and "://" in self.source
        )

    def to_yaml_config(self) -> dict[str, Any]:
        """The ``file_mounts`` value of this Storage (non-default fields only)."""
        config: dict[str, Any] = {}
        if self.name is not None:
            config["name"] = self.name
        if self.source is not None:
            config["source"] = self.source if isinstance(self.source, str) else list(self.source)
        if len(self.stores) == 1:
            config["store"] = self.stores[0]
        elif self.stores:
            config["store"] = list(self.stores)  # several: only from Python
        if not self.persistent:
            config["persistent"] = False
        if self.mode is not StorageMode.MOUNT:
            config["mode"] = self.mode.value
        if self.config:
            config["config"] = dict(self.config)
        return config

    @classmethod
    def from_yaml_config(cls, config: Any, field: str = "storage") -> Storage:
        """A Storage from a ``file_mounts`` mapping value; FieldError (relative to
        ``field``) when invalid."""
        mapping = check_mapping(config, field, "storage fields (name, source, store, mode, "
                                "persistent)")
        check_keys(mapping, YAML_KEYS, field)
        fields = _normalise(
            mapping.get("name"), mapping.get("source"), mapping.get("store"),
            mapping.get("persistent"), mapping.get("mode"), mapping.get("config"), field,
        )
        obj = cls.__new__(cls)
        obj.__attrs_init__(**fields)
        return obj

    def __str__(self) -> str:
        where = self.name or (self.source if isinstance(self.source, str) else "<bucket>")
        return f"Storage({where}, {self.mode.value})"


def _normalise(
    name: Any, source: Any, stores: Any, persistent: Any, mode: Any, config: Any, field: str
) -> dict[str, Any]:
    at = (lambda key: join_path(field, key)) if field else (lambda key: key)
    if persistent is None:
        persistent = True
    if not isinstance(persistent, bool):
        raise FieldError(at("persistent"), persistent, "true or false")
    fields = {
        "name": _name(name, at("name")),
        "source": _source(source, at("source")),
        "stores": _stores(stores, at("store")),
        "persistent": persistent,
        "mode": _mode(mode, at("mode")),
        "config": _plain_config(config, at("config")),
    }
    if fields["stores"] != ("volume",) and fields["name"] is None and fields["source"] is None:
        raise FieldError(field or "storage", {}, "a 'name' or a 'source' (or both): a bucket "
                         "needs one to be found or created")
    return fields
