"""Task: what to run (setup, run, envs, files) and on which resources.

A Task is mutable; its ``set_*``/``update_*`` methods validate, change it in place and
return it so calls chain. It is built from Python arguments or from a task YAML that
follows SkyPilot's schema (:mod:`skyhop_core.models.taskyaml`), and travels to the
server as its YAML mapping (:meth:`Task.to_yaml_config`), never pickled.

Secret values never appear in ``repr``/``str``.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import yaml

from skyhop_core.models import taskyaml
from skyhop_core.models.resources import Resources
from skyhop_core.models.storage import Storage
from skyhop_core.models.validate import FieldError, env_mapping

#: A per-node command generator: ``(node_rank, node_ips) -> command or None``.
CommandGen = Callable[[int, list[str]], str | None]
#: Called with every new Task; ``with skyhop.Dag():`` sets it so the Tasks made inside
#: join that Dag (SkyPilot's ``with sky.Dag() as dag:``).
on_task_created: contextvars.ContextVar[Callable[[Task], None] | None] = contextvars.ContextVar(
    "skyhop_on_task_created", default=None
)
_SOURCE = "<task>"


def _checked(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a validator, turning its FieldError into a TaskValidationError for Python use."""
    try:
        return func(*args, **kwargs)
    except FieldError as err:
        raise err.to_task_error(_SOURCE) from None


class Task:
    """A unit of work: setup and run commands, their environment and resources.

    Args:
        name: a display name.
        setup: a shell script run before ``run`` (once per launch).
        run: a shell command for every node, or a callable ``(node_rank, node_ips)``
            returning each node's command (or None to run nothing there).
        envs: environment variables for setup and run.
        workdir: a local directory synced to the nodes, or a git repository
            ``{'url': ..., 'ref': ...}`` cloned on them; commands run inside it.
        num_nodes: how many nodes (default 1).
        file_mounts: ``{remote path: local path or bucket URI}``.
        storage_mounts: ``{remote path: Storage}`` (buckets mounted or copied).
        volumes: ``{mount path: volume name}``.
        secrets: like envs, but never shown.
        resources: a Resources, or a list (tried in order) or set (cheapest first).
        service: the ``service:`` section, for ``serve up``.
        pool: the ``pool:`` section (kept; pools are not supported yet at launch).
        config: the task-level ``config:`` overrides.
        inputs/outputs: ``{path: estimated size in GB}`` hints for the optimizer.
        event_callback: a script SkyPilot runs on job events (refused at launch).

    Raises:
        TaskValidationError: an argument is invalid.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        setup: str | None = None,
        run: str | CommandGen | None = None,
        envs: Mapping[str, Any] | None = None,
        workdir: str | Mapping[str, str] | None = None,
        num_nodes: int | None = None,
        file_mounts: Mapping[str, str] | None = None,
        secrets: Mapping[str, Any] | None = None,
        resources: Resources | Iterable[Resources] | None = None,
        service: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        storage_mounts: Mapping[str, Storage] | None = None,
        volumes: Mapping[str, Any] | None = None,
        pool: Mapping[str, Any] | None = None,
        inputs: Mapping[str, float] | None = None,
        outputs: Mapping[str, float] | None = None,
        event_callback: str | None = None,
    ) -> None:
        self.name: str | None = _checked(
            taskyaml.validate_optional_str, name, "name", "a task name (string)"
        )
        self.setup: str | None = _checked(
            taskyaml.validate_optional_str, setup, "setup", "a shell script (string)"
        )
        self.run: str | CommandGen | None = _checked(taskyaml.validate_run, run)
        self.envs: dict[str, str] = {}
        self.secrets: dict[str, str] = {}
        self.workdir: str | dict[str, str] | None = _checked(taskyaml.validate_workdir, workdir)
        self._num_nodes = 1
        self.num_nodes = num_nodes  # type: ignore[assignment]  # None means 1
        self.file_mounts: dict[str, str] = {}
        self.storage_mounts: dict[str, Storage] = {}
        self.volumes: dict[str, Any] = {}
        self.service: dict[str, Any] | None = None
        self.config: dict[str, Any] | None = _checked(
            taskyaml.validate_section, config, "config", "config overrides"
        )
        self.pool: dict[str, Any] | None = _checked(
            taskyaml.validate_section, pool, "pool", "pool settings"
        )
        self.inputs: dict[str, float] | None = _checked(taskyaml.validate_size_hint, inputs,
                                                        "inputs")
        self.outputs: dict[str, float] | None = _checked(taskyaml.validate_size_hint, outputs,
                                                         "outputs")
        self.event_callback: str | None = _checked(
            taskyaml.validate_optional_str, event_callback, "event_callback",
            "a shell script (string)",
        )
        self.resources: tuple[Resources, ...] = (Resources(),)
        self.resources_ordered = False
        self.update_envs(envs or {})
        self.update_secrets(secrets or {})
        self.set_file_mounts(file_mounts)
        self.set_storage_mounts(storage_mounts)
        self.set_volumes(volumes)
        self.set_service(service)
        if resources is not None:
            self.set_resources(resources)
        hook = on_task_created.get()
        if hook is not None:
            hook(self)

    # --- Fields with validation -------------------------------------------------------

    @property
    def num_nodes(self) -> int:
        """How many nodes the task runs on (>= 1)."""
        return self._num_nodes

    @num_nodes.setter
    def num_nodes(self, value: int | None) -> None:
        self._num_nodes = _checked(taskyaml.validate_num_nodes, value)

    def set_resources(
        self, resources: Resources | Iterable[Resources], *, ordered: bool | None = None
    ) -> Task:
        """Set the candidate resources: one, a list (in order) or a set (cheapest first).

        ``ordered`` overrides the order semantics implied by the container type.
        """
        if isinstance(resources, Resources):
            options: list[Any] = [resources]
            implied = False
        elif isinstance(resources, set | frozenset):
            options = sorted(resources, key=lambda r: repr(r))
            implied = False
        elif isinstance(resources, Iterable) and not isinstance(resources, str | bytes | Mapping):
            options = list(resources)
            implied = True
        else:
            raise FieldError(
                "resources", resources, "a Resources, or a list or set of them"
            ).to_task_error(_SOURCE)
        if not options:
            raise FieldError("resources", resources, "at least one Resources").to_task_error(
                _SOURCE
            )
        for index, option in enumerate(options):
            if not isinstance(option, Resources):
                raise FieldError(f"resources[{index}]", option, "a Resources").to_task_error(
                    _SOURCE
                )
        unique = tuple(dict.fromkeys(options))
        self.resources = unique
        self.resources_ordered = (implied if ordered is None else ordered) and len(unique) > 1
        return self

    def set_resources_override(self, override_params: Mapping[str, Any]) -> Task:
        """Apply the same changes to every candidate (CLI ``--cpus``, ``--infra``, ...).

        Keys whose value is None are ignored (the flag was not given).
        """
        changes = {k: v for k, v in dict(override_params).items() if v is not None}
        if changes:
            self.set_resources(
                [r.copy(**changes) for r in self.resources], ordered=self.resources_ordered
            )
        return self

    def set_file_mounts(self, file_mounts: Mapping[str, str] | None) -> Task:
        """Replace the file mounts: ``{remote path: local path or bucket URI}``."""
        self.file_mounts = _checked(taskyaml.validate_file_mounts, file_mounts)
        return self

    def update_file_mounts(self, file_mounts: Mapping[str, str]) -> Task:
        """Add or replace some file mounts."""
        merged = dict(self.file_mounts)
        merged.update(_checked(taskyaml.validate_file_mounts, file_mounts))
        self.file_mounts = merged
        return self

    def set_storage_mounts(self, storage_mounts: Mapping[str, Storage] | None) -> Task:
        """Replace the storage mounts: ``{remote path: Storage}``."""
        self.storage_mounts = self._checked_storage(storage_mounts)
        return self

    def update_storage_mounts(self, storage_mounts: Mapping[str, Storage]) -> Task:
        """Add or replace some storage mounts."""
        merged = dict(self.storage_mounts)
        merged.update(self._checked_storage(storage_mounts))
        self.storage_mounts = merged
        return self

    def _checked_storage(self, storage_mounts: Mapping[str, Storage] | None) -> dict[str, Storage]:
        mounts = _checked(taskyaml.validate_storage_mounts, storage_mounts, "storage_mounts")
        clash = sorted(set(mounts) & set(self.file_mounts))
        if clash:
            raise FieldError(f"storage_mounts[{clash[0]!r}]", clash[0], "a remote path not "
                             "already in file_mounts").to_task_error(_SOURCE)
        return dict(mounts)

    def set_volumes(self, volumes: Mapping[str, Any] | None) -> Task:
        """Replace the volumes: ``{mount path: volume name}``."""
        self.volumes = _checked(taskyaml.validate_volumes, volumes)
        return self

    def update_volumes(self, volumes: Mapping[str, Any]) -> Task:
        """Add or replace some volumes."""
        self.volumes = {**self.volumes, **_checked(taskyaml.validate_volumes, volumes)}
        return self

    def set_inputs(self, inputs: str, estimated_size_gigabytes: float) -> Task:
        """Record the task's input (a path or bucket URI) and its size, for the optimizer."""
        self.inputs = _checked(taskyaml.validate_size_hint, {inputs: estimated_size_gigabytes},
                               "inputs")
        return self

    def set_outputs(self, outputs: str, estimated_size_gigabytes: float) -> Task:
        """Record the task's output (a path or bucket URI) and its size."""
        self.outputs = _checked(taskyaml.validate_size_hint,
                                {outputs: estimated_size_gigabytes}, "outputs")
        return self

    def update_envs(self, envs: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> Task:
        """Add or replace environment variables (a mapping or ``(name, value)`` pairs)."""
        self.envs.update(
            _checked(env_mapping, envs, "envs", allow_missing=False, flag="--env")
        )
        return self

    def update_secrets(self, secrets: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> Task:
        """Add or replace secrets (a mapping or ``(name, value)`` pairs)."""
        self.secrets.update(
            _checked(
                env_mapping, secrets, "secrets", allow_missing=False, flag="--secret",
                redact=True,
            )
        )
        return self

    def set_service(self, service: Mapping[str, Any] | None) -> Task:
        """Set (or clear) the ``service:`` section used by ``serve up``."""
        self.service = _checked(taskyaml.validate_section, service, "service", "service settings")
        return self

    # --- YAML -------------------------------------------------------------------------

    @classmethod
    def from_yaml(
        cls,
        path: str,
        env_overrides: taskyaml.EnvInput = None,
        secrets_overrides: taskyaml.EnvInput = None,
    ) -> Task:
        """A Task from a task YAML file.

        Raises:
            TaskValidationError: the file is unreadable, not YAML, or invalid.
        """
        text = taskyaml.read_yaml_file(path)
        return cls.from_yaml_str(text, str(path), env_overrides, secrets_overrides)

    @classmethod
    def from_yaml_str(
        cls,
        text: str,
        source: str = "<string>",
        env_overrides: taskyaml.EnvInput = None,
        secrets_overrides: taskyaml.EnvInput = None,
    ) -> Task:
        """A Task from task YAML text; ``source`` names it in errors."""
        config = taskyaml.load_yaml(text, source)
        return cls.from_yaml_config(config, source, env_overrides, secrets_overrides)

    @classmethod
    def from_yaml_config(
        cls,
        config: Any,
        source: str = _SOURCE,
        env_overrides: taskyaml.EnvInput = None,
        secrets_overrides: taskyaml.EnvInput = None,
    ) -> Task:
        """A Task from a task-YAML mapping (as loaded, or as sent over the wire)."""
        fields = taskyaml.parse_task_config(config, source, env_overrides, secrets_overrides)
        resources, ordered = fields.pop("resources"), fields.pop("resources_ordered")
        task = cls(**fields)
        task.set_resources(resources, ordered=ordered)
        return task

    def to_yaml_config(self, *, redact_secrets: bool = False) -> dict[str, Any]:
        """The task-YAML mapping of this task (a callable ``run`` is left out).

        Secret values are included (the server needs them) unless ``redact_secrets``.
        """
        config: dict[str, Any] = {}
        if self.name is not None:
            config["name"] = self.name
        if self.workdir is not None:
            config["workdir"] = (
                dict(self.workdir) if isinstance(self.workdir, dict) else self.workdir
            )
        if self.num_nodes != 1:
            config["num_nodes"] = self.num_nodes
        resources = self._resources_config()
        if resources:
            config["resources"] = resources
        if self.envs:
            config["envs"] = dict(self.envs)
        if self.secrets:
            config["secrets"] = {
                k: ("<redacted>" if redact_secrets else v) for k, v in self.secrets.items()
            }
        if self.file_mounts or self.storage_mounts:
            config["file_mounts"] = {
                **self.file_mounts,
                **{k: v.to_yaml_config() for k, v in self.storage_mounts.items()},
            }
        if self.volumes:
            config["volumes"] = taskyaml.validate_plain(self.volumes, "volumes")
        if self.setup is not None:
            config["setup"] = self.setup
        if isinstance(self.run, str):
            config["run"] = self.run
        if self.service is not None:
            config["service"] = taskyaml.validate_plain(self.service, "service")
        if self.pool is not None:
            config["pool"] = taskyaml.validate_plain(self.pool, "pool")
        if self.config is not None:
            config["config"] = taskyaml.validate_plain(self.config, "config")
        for field in ("inputs", "outputs"):
            if getattr(self, field) is not None:
                config[field] = dict(getattr(self, field))
        if self.event_callback is not None:
            config["event_callback"] = self.event_callback
        return config

    def _resources_config(self) -> dict[str, Any]:
        if len(self.resources) == 1:
            return self.resources[0].to_yaml_config()
        key = "ordered" if self.resources_ordered else "any_of"
        return {key: [r.to_yaml_config() for r in self.resources]}

    def to_yaml(self, *, redact_secrets: bool = False) -> str:
        """The task as YAML text (see :meth:`to_yaml_config`)."""
        return yaml.safe_dump(
            self.to_yaml_config(redact_secrets=redact_secrets), sort_keys=False
        )

    # --- Comparison and display -------------------------------------------------------

    def _key(self) -> tuple[Any, ...]:
        resources: Any = self.resources if self.resources_ordered else frozenset(self.resources)
        return (
            self.name, self.setup, self.run, self.envs, self.secrets, self.workdir,
            self.num_nodes, self.file_mounts, self.service, self.config, resources,
            self.resources_ordered, self.storage_mounts, self.volumes, self.pool,
            self.inputs, self.outputs, self.event_callback,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Task):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        run = self.run if isinstance(self.run, str) or self.run is None else "<command generator>"
        parts = [
            f"name={self.name!r}",
            f"run={_clip(run)!r}",
            f"num_nodes={self.num_nodes}",
            f"resources={[str(r) for r in self.resources]!r}",
        ]
        if self.envs:
            parts.append(f"envs={sorted(self.envs)!r}")
        if self.secrets:
            parts.append(f"secrets={sorted(self.secrets)!r} (values hidden)")
        return f"Task({', '.join(parts)})"

    def __str__(self) -> str:
        label = self.name or "<unnamed>"
        if isinstance(self.run, str):
            return f"Task<{label}>(run={_clip(self.run)!r})"
        return f"Task<{label}>"


def _clip(text: Any, limit: int = 60) -> Any:
    if isinstance(text, str) and len(text) > limit:
        return text[: limit - 3] + "..."
    return text
