"""The task options shared by ``launch`` and ``exec``, and building a Task from them.

``ENTRYPOINT`` is a task YAML when it is one existing ``.yaml``/``.yml`` file; otherwise
its words, joined by spaces, are the ``run`` command. Options override the YAML.

``--env-file``/``--secret-file`` read dotenv files (python-dotenv's format: ``KEY=VALUE``
lines, ``#`` comments, quoting, an optional ``export``); ``--env``/``--secret`` win over
them, and both fill the YAML's null-valued ``envs``/``secrets``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

F = Callable[..., Any]


def _options() -> list[Callable[[F], F]]:
    return [
        click.option(
            "--infra", help="Where to run: a backend, optionally with a place (aws/us-east-1)."
        ),
        click.option("--cpus", help="vCPUs per node, e.g. 4 or 4+ (at least 4)."),
        click.option("--memory", help="Memory per node in GB, e.g. 16 or 16+."),
        click.option("--gpus", help="Accelerators per node, e.g. A100:8."),
        click.option("--num-nodes", type=click.IntRange(min=1), help="Number of nodes."),
        click.option(
            "--env",
            "envs",
            multiple=True,
            metavar="KEY[=VALUE]",
            help="Environment variable for the task; KEY alone takes this shell's value.",
        ),
        click.option(
            "--secret",
            "secrets",
            multiple=True,
            metavar="KEY[=VALUE]",
            help="Secret environment variable (never logged); KEY alone takes this shell's value.",
        ),
        click.option(
            "--env-file",
            "env_files",
            multiple=True,
            type=click.Path(exists=True, dir_okay=False),
            help="A dotenv file of environment variables (KEY=VALUE lines); --env wins.",
        ),
        click.option(
            "--secret-file",
            "secret_files",
            multiple=True,
            type=click.Path(exists=True, dir_okay=False),
            help="A dotenv file of secrets (KEY=VALUE lines); --secret wins.",
        ),
        click.option(
            "--workdir",
            type=click.Path(exists=True, file_okay=False),
            help="Directory synced to the nodes.",
        ),
    ]


def task_options(func: F) -> F:
    """Decorate a command with the task options."""
    for option in reversed(_options()):
        func = option(func)
    return func


def parse_pairs(values: Sequence[str], what: str) -> dict[str, str]:
    """``KEY=VALUE`` pairs; a bare ``KEY`` takes its value from the environment."""
    pairs: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not key:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE.", param_hint=f"--{what}")
        if not sep:
            if key not in os.environ:
                raise click.BadParameter(
                    f"{key!r} has no value and is not set in this shell; pass {key}=VALUE.",
                    param_hint=f"--{what}",
                )
            value = os.environ[key]
        pairs[key] = value
    return pairs


def read_dotenv(files: Sequence[str], what: str) -> dict[str, str]:
    """The ``KEY=VALUE`` pairs of dotenv files, later files winning.

    A key without a value takes this shell's value, like a bare ``--env KEY``.
    """
    if not files:
        return {}
    from dotenv import dotenv_values

    pairs: dict[str, str] = {}
    for path in files:
        for key, value in dotenv_values(path).items():
            if value is None:
                if key not in os.environ:
                    raise click.BadParameter(
                        f"{path}: {key!r} has no value and is not set in this shell; "
                        f"write {key}=VALUE.",
                        param_hint=f"--{what}-file",
                    )
                value = os.environ[key]
            pairs[key] = value
    return pairs


def yaml_entrypoint(entrypoint: Sequence[str]) -> Path | None:
    if len(entrypoint) != 1:
        return None
    path = Path(entrypoint[0]).expanduser()
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    return None


def build_task(
    entrypoint: Sequence[str],
    *,
    infra: str | None = None,
    cpus: str | None = None,
    memory: str | None = None,
    gpus: str | None = None,
    num_nodes: int | None = None,
    envs: Sequence[str] = (),
    secrets: Sequence[str] = (),
    workdir: str | None = None,
    env_files: Sequence[str] = (),
    secret_files: Sequence[str] = (),
    name: str | None = None,
    ports: Sequence[str] = (),
) -> Any:
    """A Task from the entrypoint and the task options."""
    from skyhop_core.models import Task

    env_pairs = {**read_dotenv(env_files, "env"), **parse_pairs(envs, "env")}
    secret_pairs = {**read_dotenv(secret_files, "secret"), **parse_pairs(secrets, "secret")}
    path = yaml_entrypoint(entrypoint)
    if path is not None:
        task = Task.from_yaml(str(path), env_overrides=env_pairs, secrets_overrides=secret_pairs)
    else:
        run = " ".join(entrypoint).strip() or None
        task = Task(run=run, envs=env_pairs, secrets=secret_pairs)
    if num_nodes is not None:
        task.num_nodes = num_nodes  # validated by the Task
    if workdir is not None:
        task.workdir = workdir
    if name is not None:
        task.name = name
    task.set_resources_override(
        {
            "infra": infra,
            "cpus": cpus,
            "memory": memory,
            "accelerators": gpus,
            "ports": list(ports) or None,
        }
    )
    return task


def task_kwargs(params: dict[str, Any]) -> dict[str, Any]:
    """Pop the task options out of a command's parameters."""
    names = (
        "infra", "cpus", "memory", "gpus", "num_nodes", "envs", "secrets", "workdir",
        "env_files", "secret_files", "name", "ports",
    )  # fmt: skip
    return {name: params.pop(name) for name in names if name in params}
