"""The registered stores, and a way to call a store hook on the plugin that owns a store.

Stores come from the same plugin manager as backends (a backend's plugin may provide a
store); :class:`Stores` maps each ``skyhop_store_info().name`` to its plugin.
"""

from __future__ import annotations

from typing import Any, cast

import pluggy

from skyhop_core.exceptions import NotSupportedError
from skyhop_core.storage.records import StoreInfo


class Stores:
    """Store name -> plugin; ``call`` runs a hook on the owner of one store."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self._owners: dict[str, Any] = {}
        self._infos: dict[str, StoreInfo] = {}
        for impl in pm.hook.skyhop_store_info.get_hookimpls():
            info = cast(StoreInfo, impl.function())
            if info.name not in self._owners:  # the first registered wins
                self._owners[info.name] = impl.plugin
                self._infos[info.name] = info

    def names(self) -> list[str]:
        return sorted(self._infos)

    def info(self, store: str) -> StoreInfo:
        try:
            return self._infos[store]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise NotSupportedError(
                f"store: {store!r} is not available on this server (installed stores: "
                f"{known}). Install its extra (e.g. pip install 'skyhop[aws]' for s3) or "
                "use another store."
            ) from None

    def implements(self, store: str, hook: str) -> bool:
        """Whether the plugin that owns ``store`` implements the optional ``hook``."""
        owner = self._owners.get(store)
        return any(impl.plugin is owner for impl in getattr(self.pm.hook, hook).get_hookimpls())

    def call(self, store: str, hook: str, **kwargs: Any) -> Any:
        """Call ``hook`` on the plugin that owns ``store``; what it returns."""
        self.info(store)
        owner = self._owners[store]
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            if impl.plugin is owner:
                return impl.function(**kwargs)
        raise NotSupportedError(
            f"The {self._infos[store].display_name or store} store does not support "
            f"{hook.removeprefix('skyhop_store_').replace('_', ' ')}."
        )
