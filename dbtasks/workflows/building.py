"""Build a workflow from ordinary tasks: ``call``, ``chain`` and ``group``.

Nothing here touches the database. ``plan()`` flattens a workflow into its
members, in order, each with the members it waits on and what it receives
from them when released:

- a chain step waits on the step before it and receives its return value
  as its first positional argument (it runs only if that step succeeded);
- a group's callback (``then=``) waits on every member and receives a list
  of their outcomes as its first positional argument (it runs whatever they
  did);
- a step after a group without a callback is that group's callback.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING
from typing import Any

from asgiref.sync import sync_to_async

from dbtasks.compat import Task
from dbtasks.workflows.models import NOTHING
from dbtasks.workflows.models import OUTCOMES
from dbtasks.workflows.models import VALUE

if TYPE_CHECKING:
    from dbtasks.workflows.reading import WorkflowResult


@dataclass(frozen=True)
class Call:
    """A task with the arguments it will be enqueued with (Celery's signature)."""

    task: Task[Any, Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.task, Task):
            raise TypeError(
                f"A workflow step must be a task (declared with @task), not {self.task!r}."
            )


def call(task: Task[Any, Any], *args: Any, **kwargs: Any) -> Call:
    """``task`` with its arguments, to be enqueued as a workflow member."""
    return Call(task, args, kwargs)


def enqueue(node: Chain | Group, name: str) -> WorkflowResult:
    from dbtasks.workflows.enqueueing import enqueue

    return enqueue(plan(node), name=name or describe(node))


@dataclass(frozen=True)
class Chain:
    steps: tuple[Call | Chain | Group, ...]

    def enqueue(self, *, name: str = "") -> WorkflowResult:
        """Write the whole chain in one transaction (the caller's, if any); return it."""
        return enqueue(self, name)

    async def aenqueue(self, *, name: str = "") -> WorkflowResult:
        """``enqueue()`` from async code (in a thread, as Django's ORM requires)."""
        return await sync_to_async(enqueue)(self, name)


@dataclass(frozen=True)
class Group:
    members: tuple[Call | Chain | Group, ...]
    then: Call | Chain | Group | None = None

    def enqueue(self, *, name: str = "") -> WorkflowResult:
        """Write the whole group in one transaction (the caller's, if any); return it."""
        return enqueue(self, name)

    async def aenqueue(self, *, name: str = "") -> WorkflowResult:
        """``enqueue()`` from async code (in a thread, as Django's ORM requires)."""
        return await sync_to_async(enqueue)(self, name)


type Step = Call | Chain | Group | Task[Any, Any]  # a bare task: no arguments


def as_step(step: Step) -> Call | Chain | Group:
    """A bare task is a call with no arguments."""
    if isinstance(step, Call | Chain | Group):
        return step
    return Call(step)


def chain(*steps: Step) -> Chain:
    """Run ``steps`` one after the other, each receiving the previous one's return value."""
    if not steps:
        raise ValueError("A chain needs at least one step.")
    return Chain(tuple(as_step(step) for step in steps))


def group(members: Iterable[Step], *, then: Step | None = None) -> Group:
    """Run ``members`` in parallel; then, if given, ``then`` with a list of their outcomes."""
    steps = tuple(as_step(member) for member in members)
    if not steps:
        raise ValueError("A group needs at least one member.")
    return Group(steps, None if then is None else as_step(then))


@dataclass
class Planned:
    """One member as it will be written: its position, call and prerequisites."""

    position: int
    call: Call
    waits_on: list[int]  # positions
    receives: str


def plan(node: Call | Chain | Group) -> list[Planned]:
    """The workflow's members in order; prerequisites always come first."""
    members: list[Planned] = []

    def add(node: Call | Chain | Group, after: list[int], receives: str) -> tuple[list[int], str]:
        """Add ``node`` waiting on ``after``; return its last members and what follows receives."""
        if isinstance(node, Call):
            members.append(Planned(len(members), node, list(after), receives if after else NOTHING))
            return [len(members) - 1], VALUE
        if isinstance(node, Chain):
            for step in node.steps:
                after, receives = add(step, after, receives)
            return after, receives
        ends: list[int] = []
        for member in node.members:
            ends += add(member, after, receives)[0]
        if node.then is None:
            return ends, OUTCOMES
        return add(node.then, ends, OUTCOMES)

    add(node, [], NOTHING)
    return members


def describe(node: Call | Chain | Group) -> str:
    """A short name for the admin and /ops/: ``chain(a, b)``, ``group(3, then=c)``."""
    if isinstance(node, Call):
        return node.task.name
    if isinstance(node, Chain):
        text = f"chain({', '.join(describe(step) for step in node.steps)})"
    else:
        then = f", then={describe(node.then)}" if node.then is not None else ""
        text = f"group({len(node.members)}{then})"
    return text if len(text) <= 200 else text[:199] + "…"
