"""``skyhop.Dag``: the tasks of a pipeline, run in order by ``skyhop.jobs.launch``.

A pipeline is a managed job whose tasks run one after another, each on its own cluster;
when one fails the rest are CANCELLED. Build one in Python::

    import skyhop as sky

    with sky.Dag(name="train-eval") as dag:   # Tasks made inside join the Dag, in order
        sky.Task(name="train", run="python train.py")
        sky.Task(name="eval", run="python eval.py")
    sky.jobs.launch(dag)

or from a multi-document YAML (the first document holds only the pipeline's ``name:``,
each later one is a task), as SkyPilot reads it::

    dag = sky.Dag.from_yaml("pipeline.yaml")
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from skyhop_core import exceptions

if TYPE_CHECKING:
    from skyhop_core.models import Task
    from skyhop_core.models.taskyaml import EnvInput

#: The Dag a ``with Dag():`` block is building (innermost first).
_current: contextvars.ContextVar[tuple[Dag, ...]] = contextvars.ContextVar(
    "skyhop_dag", default=()
)


class Dag:
    """An ordered chain of tasks (SkyPilot's ``sky.Dag``, linear pipelines only).

    Args:
        name: the pipeline's name; the managed job is named after it.
    """

    def __init__(self, name: str | None = None) -> None:
        self.name = name
        self.tasks: list[Task] = []

    def add(self, task: Task) -> Dag:
        """Append ``task`` (a task already in the Dag is not added twice)."""
        if not any(t is task for t in self.tasks):
            self.tasks.append(task)
        return self

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks)

    def __repr__(self) -> str:
        names = ", ".join(t.name or "<unnamed>" for t in self.tasks)
        return f"Dag(name={self.name!r}, tasks=[{names}])"

    # --- with Dag() as dag: ------------------------------------------------------------

    def __enter__(self) -> Dag:
        from skyhop_core.models import task as task_module

        stack = _current.get()
        self._token = _current.set((self, *stack))
        if not stack:
            self._hook_token = task_module.on_task_created.set(_add_to_current)
        return self

    def __exit__(self, *exc: Any) -> None:
        from skyhop_core.models import task as task_module

        hook_token = getattr(self, "_hook_token", None)
        if hook_token is not None:
            task_module.on_task_created.reset(hook_token)
            del self._hook_token
        _current.reset(self._token)

    # --- YAML ---------------------------------------------------------------------------

    @classmethod
    def from_yaml(
        cls,
        path: str,
        env_overrides: EnvInput = None,
        secrets_overrides: EnvInput = None,
    ) -> Dag:
        """A Dag from a task YAML file: one document is a one-task Dag; several are a
        pipeline whose first document may hold only ``name:``.

        Raises:
            TaskValidationError: the file is unreadable, not YAML, or a task is invalid
                (the message names the document).
        """
        from skyhop_core.models import taskyaml

        text = taskyaml.read_yaml_file(path)
        return cls.from_yaml_str(text, str(path), env_overrides, secrets_overrides)

    @classmethod
    def from_yaml_str(
        cls,
        text: str,
        source: str = "<string>",
        env_overrides: EnvInput = None,
        secrets_overrides: EnvInput = None,
    ) -> Dag:
        """A Dag from (multi-document) task YAML text; ``source`` names it in errors."""
        from skyhop_core.models import Task, taskyaml
        from skyhop_core.models.yamlsafe import load_all

        try:
            documents = [d for d in load_all(text) if d is not None]
        except Exception:
            taskyaml.load_yaml(text, source)  # raises the task parser's clear error
            raise
        name = None
        if len(documents) > 1 and isinstance(documents[0], dict) and set(documents[0]) == {
            "name"
        }:
            name = documents.pop(0)["name"]
            if not isinstance(name, str):
                raise exceptions.TaskValidationError(
                    f"{source}: the pipeline's name (first document) must be a string, "
                    f"got {name!r}.", source=source, field="name", value=repr(name),
                )  # fmt: skip
        if not documents:
            documents = [{}]
        dag = cls(name)
        for index, config in enumerate(documents):
            where = source if len(documents) == 1 else f"{source} (task {index})"
            dag.tasks.append(
                Task.from_yaml_config(config, where, env_overrides, secrets_overrides)
            )
        if dag.name is None and len(dag.tasks) == 1:
            dag.name = dag.tasks[0].name
        return dag


def _add_to_current(task: Task) -> None:
    stack = _current.get()
    if stack:
        stack[0].add(task)


def current() -> Dag | None:
    """The Dag of the innermost ``with Dag():`` block, if any."""
    stack = _current.get()
    return stack[0] if stack else None


__all__ = ["Dag", "current"]
