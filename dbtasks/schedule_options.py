"""Recurring tasks as OPTIONS declares them: ``OPTIONS["schedules"][name]``, parsed once.

The worker's maintenance enqueues each tick (``dbtasks/worker/schedules.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from croniter import croniter

from dbtasks.option_values import OptionError
from dbtasks.option_values import mapping
from dbtasks.option_values import reject_unknown

_SCHEDULE_KEYS = ("task", "cron", "args", "kwargs", "queue_name", "priority")


@dataclass(frozen=True, slots=True)
class Schedule:
    """A recurring task: ``task_path`` is enqueued at every tick of ``cron``."""

    name: str
    task_path: str
    cron: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    queue_name: str | None = None
    priority: int | None = None


def parse_schedule(name: object, options: object, *, key: str, queues: set[str]) -> Schedule:
    """Validate ``OPTIONS["schedules"][name]``; every mistake names its key."""
    if not isinstance(name, str) or not name or len(name) > 100:
        raise OptionError(f"{key} names must be non-empty strings of at most 100 characters.")
    key = f"{key}[{name!r}]"
    options = mapping(options, key=key)
    reject_unknown(options, _SCHEDULE_KEYS, key=key)
    task_path = options.get("task")
    if not isinstance(task_path, str) or "." not in task_path:
        raise OptionError(f"{key}['task'] must be a dotted path to a task, got {task_path!r}.")
    cron = options.get("cron")
    if not isinstance(cron, str) or not croniter.is_valid(cron):
        raise OptionError(
            f"{key}['cron'] must be a cron expression such as '*/5 * * * *', got {cron!r}."
        )
    args = options.get("args", [])
    if not isinstance(args, list | tuple):
        raise OptionError(f"{key}['args'] must be a list, got {args!r}.")
    kwargs = mapping(options.get("kwargs", {}), key=f"{key}['kwargs']")
    queue_name = options.get("queue_name")
    if queue_name is not None and queue_name not in queues:
        raise OptionError(
            f"{key}['queue_name'] is {queue_name!r}, which is not in QUEUES {sorted(queues)}."
        )
    priority = options.get("priority")
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
        raise OptionError(f"{key}['priority'] must be an integer, got {priority!r}.")
    return Schedule(
        name=name,
        task_path=task_path,
        cron=cron,
        args=tuple(args),
        kwargs=dict(kwargs),
        queue_name=queue_name,
        priority=priority,
    )
