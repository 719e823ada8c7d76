"""Builds the plugin manager and the typed facade the core calls backends through.

Built-in and third-party backends are found the same way: entry points in the group
``skyhop.plugins``. Nothing is loaded at import time; :func:`load_backends` does it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from collections.abc import Iterable
from typing import Any, cast

import attrs
import pluggy

from skyhop_core import hookspecs
from skyhop_core.exceptions import NotSupportedError, UnknownBackendError
from skyhop_core.models.records import BackendInfo

ENTRY_POINT_GROUP = "skyhop.plugins"

#: Hooks the core's default plugin (the node agent) implements for every backend.
DEFAULT_HOOKS = frozenset(
    {
        "skyhop_setup_runtime",
        "skyhop_submit_job",
        "skyhop_queue",
        "skyhop_tail_logs",
        "skyhop_cancel_jobs",
        "skyhop_idle_seconds",
        "skyhop_runtime_health",
    }
)


@attrs.frozen
class BrokenPlugin:
    """An entry point that could not be loaded; ``skyhop check`` shows the reason."""

    name: str
    error: str


class Backends:
    """The registered backends, and a way to call a hook on the one that owns a backend."""

    def __init__(self, pm: pluggy.PluginManager, broken: Iterable[BrokenPlugin] = ()) -> None:
        self.pm = pm
        self.broken = list(broken)
        self._owners: dict[str, Any] = {}
        self._infos: dict[str, BackendInfo] = {}
        for impl in pm.hook.skyhop_backend_info.get_hookimpls():
            info = cast(BackendInfo, impl.function())
            if info.name in self._owners:
                continue  # the first registered wins; built-ins come first
            self._owners[info.name] = impl.plugin
            self._infos[info.name] = info

    def names(self) -> list[str]:
        return list(self._infos)

    def info(self, backend: str) -> BackendInfo:
        try:
            return self._infos[backend]
        except KeyError:
            known = ", ".join(sorted(self._infos)) or "none"
            raise UnknownBackendError(
                f"No backend named {backend!r} is installed (installed: {known})."
            ) from None

    def infos(self) -> list[BackendInfo]:
        return list(self._infos.values())

    def implements(self, backend: str, hook: str) -> bool:
        owner = self._owners.get(backend)
        return any(impl.plugin is owner for impl in getattr(self.pm.hook, hook).get_hookimpls())

    def call(self, backend: str, hook: str, **kwargs: Any) -> Any:
        """Call ``hook`` on the plugin that owns ``backend`` (or on the default plugin).

        Returns what the hook returns (an awaitable for async hooks). As pluggy does, an
        implementation gets only the arguments it names: a hook that gains an argument
        keeps working with the plugins written before it.
        """
        self.info(backend)
        owner = self._owners[backend]
        impls = getattr(self.pm.hook, hook).get_hookimpls()
        for impl in impls:
            if impl.plugin is owner:
                return _call_impl(impl, kwargs)
        if hook in DEFAULT_HOOKS:
            for impl in impls:
                if self.pm.get_name(impl.plugin) == "skyhop-default-agent":
                    return _call_impl(impl, kwargs)
        raise NotSupportedError(
            f"The {self._infos[backend].display_name} backend does not support "
            f"{hook.removeprefix('skyhop_').replace('_', ' ')}."
        )


def _call_impl(impl: Any, kwargs: dict[str, Any]) -> Any:
    names = (*impl.argnames, *impl.kwargnames)
    return impl.function(**{k: v for k, v in kwargs.items() if k in names})


def load_backends(
    extra_plugins: Iterable[object] = (), *, entry_points: bool = True
) -> Backends:
    """Build the plugin manager: the default agent plugin, entry points, then extras.

    ``extra_plugins`` lets tests and embedders register plugin objects directly; the
    ``SKYHOP_PLUGINS`` environment variable (comma-separated module names, like pytest's
    ``PYTEST_PLUGINS``) loads plugins that are importable but not installed as packages.
    """
    from skyhop_core import agentjobs

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    from skyhop_core.storage import hookspecs as store_hookspecs

    pm.add_hookspecs(store_hookspecs)
    pm.register(agentjobs, name="skyhop-default-agent")
    broken: list[BrokenPlugin] = []
    if entry_points:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if pm.get_plugin(ep.name) is not None:
                continue
            try:
                plugin = ep.load()
                pm.register(plugin, name=ep.name)
            except Exception as exc:  # a broken third-party plugin must not break skyhop
                broken.append(BrokenPlugin(ep.name, f"{type(exc).__name__}: {exc}"))
    for module_name in filter(None, os.environ.get("SKYHOP_PLUGINS", "").split(",")):
        module_name = module_name.strip()
        try:
            pm.register(importlib.import_module(module_name), name=module_name)
        except Exception as exc:
            broken.append(BrokenPlugin(module_name, f"{type(exc).__name__}: {exc}"))
    for plugin in extra_plugins:
        pm.register(plugin)
    return Backends(pm, broken)
