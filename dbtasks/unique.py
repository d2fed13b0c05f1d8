"""Unique tasks: at most one unfinished task per key.

``enqueue_unique()`` enqueues like ``Task.enqueue()`` unless a task with the
same key is still waiting or running; then it returns that task's result
instead, and says so::

    from dbtasks.unique import enqueue_unique

    result, created = enqueue_unique(send_digest.using(priority=5), f"digest:{user.pk}", user.pk)
    if not created:
        ...  # the digest already queued (or running) will do

The database guarantees it: a unique partial index over the key of
unfinished rows (``dbtasks_unique_unfinished``), so two processes enqueueing
the same key at once get one row between them. Once that task has finished
(successfully or not), the key is free again.
"""

from __future__ import annotations

from typing import Any
from typing import cast

from asgiref.sync import sync_to_async
from django.db import IntegrityError
from django.db import transaction

from dbtasks import rows
from dbtasks.backend import DatabaseBackend
from dbtasks.compat import InvalidTaskBackend
from dbtasks.compat import Task
from dbtasks.compat import TaskResult
from dbtasks.compat import task_enqueued
from dbtasks.models import UNFINISHED
from dbtasks.models import DBTaskResult

MAX_KEY_LENGTH = 255
# An insert refused for a key whose task then finished before we could read
# it: try again, a few times (each try means another enqueuer won a race).
TRIES = 5


def enqueue_unique[**P, R](
    task: Task[P, R], key: str, *args: Any, **kwargs: Any
) -> tuple[TaskResult[P, R], bool]:
    """Enqueue ``task`` unless a task with ``key`` is unfinished; return (result, created).

    ``created`` is False when the result is the unfinished task already there
    (its arguments are whatever that one was enqueued with). Like ``enqueue()``
    it writes in the caller's transaction; on Postgres a concurrent enqueuer
    of the same key waits for that transaction to end.
    """
    backend = task.get_backend()
    if not isinstance(backend, DatabaseBackend):
        raise InvalidTaskBackend(
            f"Unique tasks need a dbtasks DatabaseBackend; {task.backend!r} is "
            f"{type(backend).__name__}."
        )
    if not is_valid_key(key):
        raise ValueError(
            f"A unique key must be a non-empty string of at most {MAX_KEY_LENGTH} "
            f"characters, got {key!r}."
        )
    row = rows.new_row(backend, task, args, kwargs, unique_key=key)
    for _ in range(TRIES):
        try:
            with transaction.atomic(using=backend.db_alias):  # a savepoint in the caller's
                rows.insert_row(backend, row)
        except IntegrityError:
            existing = unfinished(backend, key)
            if existing is not None:
                history = list(existing.attempts.all())
                return cast("TaskResult[P, R]", existing.to_task_result(history, task)), False
            row.pk = None  # it finished meanwhile: the key is free, insert again
            continue
        result = row.to_task_result(history=[], task=task)
        task_enqueued.send(type(backend), task_result=result)
        return result, True
    raise IntegrityError(f"Could not enqueue unique task {key!r}: its key kept changing hands.")


async def aenqueue_unique[**P, R](
    task: Task[P, R], key: str, *args: Any, **kwargs: Any
) -> tuple[TaskResult[P, R], bool]:
    """``enqueue_unique()`` for async code."""
    return await sync_to_async(enqueue_unique)(task, key, *args, **kwargs)


def is_valid_key(key: object) -> bool:
    """A key is a non-empty string of at most ``MAX_KEY_LENGTH`` characters (None is not)."""
    return isinstance(key, str) and 0 < len(key) <= MAX_KEY_LENGTH


def unfinished(backend: DatabaseBackend, key: str) -> DBTaskResult | None:
    """The unfinished row holding ``key``, if any."""
    return (
        DBTaskResult.objects.using(backend.db_alias)
        .filter(backend_name=backend.alias, unique_key=key, status__in=UNFINISHED)
        .first()
    )
