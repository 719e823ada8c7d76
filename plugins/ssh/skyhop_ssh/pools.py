"""SSH node pools: the machines a user lists, in SkyPilot's ``ssh_node_pools.yaml`` format.

Pools come from ``<persistent path>/ssh_node_pools.yaml``, from ``ssh_node_pools:`` at the
top of the config file, or from ``node_pools:`` in its ``ssh:`` section (later sources
add pools; a pool named twice keeps the first definition)::

    mypool:
      user: root
      identity_file: /path/to/key
      proxy_jump: bastion.example.com        # optional, per pool or per host
      hosts:
        - 10.0.0.11
        - {ip: 10.0.0.12, port: 2222, user: ubuntu, identity_file: /other/key}

Extensions (skyhop only), per pool or per host: ``runtime_dir`` (where the agent and job
files live; default ``~/.skyhop/runtime``) and ``home`` (what ``~`` means for the
workdir and file mounts; default the login user's home).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import attrs

from skyhop_core.exceptions import SkyhopError

POOLS_FILE = "ssh_node_pools.yaml"
DEFAULT_RUNTIME_DIR = "~/.skyhop/runtime"
_HOST_KEYS = {"ip", "port", "user", "identity_file", "proxy_jump", "runtime_dir", "home"}
_POOL_KEYS = (_HOST_KEYS - {"ip", "port"}) | {"hosts", "password"}


class PoolConfigError(SkyhopError):
    """The node pools file (or config section) is malformed."""


@attrs.frozen
class Host:
    """One machine of a pool, with its connection settings resolved."""

    pool: str
    ip: str
    port: int = 22
    user: str = ""
    identity_file: str | None = None
    proxy_jump: str | None = None
    runtime_dir: str = DEFAULT_RUNTIME_DIR
    home: str | None = None

    @property
    def key(self) -> str:
        """The identity used for allocation: a machine belongs to one cluster at a time."""
        return f"{self.ip}:{self.port}"

    @property
    def label(self) -> str:
        return f"{self.user}@{self.ip}:{self.port}" if self.user else f"{self.ip}:{self.port}"


def _expand(path: Any) -> str | None:
    return None if path in (None, "") else os.path.expanduser(str(path))


def parse_pools(data: Any, source: str) -> dict[str, list[Host]]:
    """Parse a ``{pool: {user, identity_file, hosts: [...]}}`` mapping into hosts."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise PoolConfigError(
            f"{source}: expected a mapping of pool names, got {type(data).__name__}."
        )
    pools: dict[str, list[Host]] = {}
    for name, spec in data.items():
        if not isinstance(spec, Mapping):
            raise PoolConfigError(f"{source}: pool {name!r} must be a mapping with 'hosts:'.")
        unknown = set(spec) - _POOL_KEYS
        if unknown:
            raise PoolConfigError(f"{source}: pool {name!r}: unknown keys {sorted(unknown)}.")
        if spec.get("password"):
            raise PoolConfigError(
                f"{source}: pool {name!r}: password authentication is not supported; "
                "use identity_file (an SSH key)."
            )
        raw_hosts = spec.get("hosts") or []
        if not isinstance(raw_hosts, list) or not raw_hosts:
            raise PoolConfigError(f"{source}: pool {name!r} needs a non-empty 'hosts:' list.")
        pools[str(name)] = [_parse_host(str(name), h, spec, source) for h in raw_hosts]
    return pools


def _parse_host(pool: str, raw: Any, defaults: Mapping[str, Any], source: str) -> Host:
    entry: dict[str, Any] = {"ip": raw} if isinstance(raw, str) else dict(raw or {})
    unknown = set(entry) - _HOST_KEYS
    if unknown or not entry.get("ip"):
        raise PoolConfigError(
            f"{source}: pool {pool!r}: bad host {raw!r} (need 'ip'; known keys: {sorted(_HOST_KEYS)})."
        )
    merged = {k: defaults.get(k) for k in _POOL_KEYS & _HOST_KEYS} | {
        k: v for k, v in entry.items() if v is not None
    }
    try:
        port = int(merged.get("port") or 22)
    except (TypeError, ValueError) as exc:
        raise PoolConfigError(f"{source}: pool {pool!r}: bad port in {raw!r}.") from exc
    return Host(
        pool=pool,
        ip=str(merged["ip"]),
        port=port,
        user=str(merged.get("user") or ""),
        identity_file=_expand(merged.get("identity_file")),
        proxy_jump=merged.get("proxy_jump") or None,
        runtime_dir=str(merged.get("runtime_dir") or DEFAULT_RUNTIME_DIR),
        home=str(merged["home"]) if merged.get("home") else None,
    )


def load_pools(persistent_path: str, config: Mapping[str, Any]) -> dict[str, list[Host]]:
    """Every pool the user defined (see the module docstring for the sources)."""
    import yaml

    pools: dict[str, list[Host]] = {}
    path = os.path.join(persistent_path, POOLS_FILE)
    if os.path.exists(path):
        with open(path) as f:
            try:
                data = yaml.safe_load(f)
            except yaml.YAMLError as exc:
                raise PoolConfigError(f"{path}: not valid YAML: {exc}") from exc
        pools.update(parse_pools(data, path))
    from skyhop_core.paths import config_file, load_config

    top = load_config().get("ssh_node_pools")
    for name, hosts in parse_pools(top, f"{config_file()}: ssh_node_pools").items():
        pools.setdefault(name, hosts)
    for name, hosts in parse_pools(config.get("node_pools"), "config ssh.node_pools").items():
        pools.setdefault(name, hosts)
    return pools
