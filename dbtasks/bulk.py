"""Enqueue many calls of one task at once.

::

    from dbtasks.bulk import enqueue_many

    results = enqueue_many(send_notification, [((pk,), {}) for pk in pks])

Each call is validated as ``task.enqueue(*args, **kwargs)`` would validate
it, and each result sends ``task_enqueued``; the rows go in with one INSERT,
in the caller's transaction, all or nothing. On dbtasks' backend that costs
a small fraction of ``enqueue()`` in a loop (see docs/performance.md). Any
other backend gets the loop, so code written against this works with
Django's test backends too (one enqueue at a time, as they do it).
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from dbtasks.backend import DatabaseBackend
from dbtasks.compat import Task
from dbtasks.compat import TaskResult

Call = tuple[Sequence[Any], Mapping[str, Any]]


def enqueue_many[**P, R](task: Task[P, R], calls: Iterable[Call]) -> list[TaskResult[P, R]]:
    """Enqueue ``task(*args, **kwargs)`` for each ``(args, kwargs)`` in ``calls``."""
    calls = [check_call(call) for call in calls]
    backend = task.get_backend()
    if isinstance(backend, DatabaseBackend):
        return backend.enqueue_many(task, calls)
    return [task.enqueue(*args, **kwargs) for args, kwargs in calls]


def check_call(call: Any) -> Call:
    """``call`` as an (args, kwargs) pair, or a TypeError saying what was wrong."""
    if not (isinstance(call, tuple | list) and len(call) == 2):
        raise TypeError(f"Each call must be an (args, kwargs) pair, got {call!r}.")
    args, kwargs = call
    if not isinstance(args, Sequence) or isinstance(args, str | bytes):
        raise TypeError(f"A call's args must be a list or tuple, got {args!r}.")
    if not isinstance(kwargs, Mapping):
        raise TypeError(f"A call's kwargs must be a dict, got {kwargs!r}.")
    return args, kwargs
