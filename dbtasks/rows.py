"""A new task's row: built from the Task and its arguments, inserted in the caller's transaction.

``DatabaseBackend.enqueue()`` and ``dbtasks.unique.enqueue_unique()`` both
write through here, so validation, the JSON round trip of the arguments, the
status a new row starts in, the concurrency slot and the rate-limit key are
decided in one place.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

from django.db import connections
from django.db import transaction
from django.utils import timezone

from dbtasks.compat import Task
from dbtasks.exceptions import InvalidTaskArguments
from dbtasks.models import BLOCKED
from dbtasks.models import READY
from dbtasks.models import DBTaskResult
from dbtasks.models import waiting_status
from dbtasks.serialization import PayloadTooLarge
from dbtasks.serialization import to_json_value
from dbtasks.sql import notify
from dbtasks.sql import semaphores

if TYPE_CHECKING:
    from dbtasks.backend import DatabaseBackend


def serialize_arguments(
    args: Sequence[Any], kwargs: Mapping[str, Any], *, max_size: int | None = None
) -> dict[str, Any]:
    """Return args and kwargs as stored, or raise InvalidTaskArguments.

    The worker calls the task with what comes back out of the database, so
    anything that would come back different is refused now, with nothing
    written.
    """
    try:
        stored: dict[str, Any] = to_json_value(
            {"args": list(args), "kwargs": dict(kwargs)}, what="Task arguments", max_size=max_size
        )
    except PayloadTooLarge as error:
        raise InvalidTaskArguments(
            f"{error} Pass ids and load large data inside the task, or raise "
            "OPTIONS['max_arguments_size']."
        ) from None
    except (TypeError, ValueError) as error:
        raise InvalidTaskArguments(
            f"{error} Pass ids, strings and numbers, and load objects inside the task."
        ) from None
    return stored


def copy_row(template: DBTaskResult) -> DBTaskResult:
    """An unsaved copy of ``template``, for a bulk enqueue's rows that differ in arguments only.

    ``copy.copy()`` of a model goes through pickling (``__reduce__``), which
    costs more than the rest of a bulk enqueue per row; the copy needs only the
    field values and its own ``_state``.
    """
    row = DBTaskResult.__new__(DBTaskResult)
    row.__dict__.update(template.__dict__)
    row._state = copy.copy(template._state)
    return row


def new_row(
    backend: DatabaseBackend,
    task: Task[..., Any],
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    *,
    unique_key: str = "",
) -> DBTaskResult:
    """The row that enqueues ``task`` (not saved): validated, arguments stored as JSON."""
    backend.validate_task(task)
    backend.raise_if_misconfigured()
    config = backend.config
    arguments = serialize_arguments(args, kwargs, max_size=config.max_arguments_size)
    now = timezone.now()
    available_after = task.run_after or now
    policy = config.policy(task.queue_name, task.module_path)
    concurrency_key = rate_key = ""
    if policy.concurrency is not None:
        concurrency_key = policy.concurrency.key_for(task.func, task.queue_name, args, kwargs)
    if policy.rate_limit is not None:
        rate_key = policy.rate_limit.key_for(task.func, task.queue_name, args, kwargs)
    return DBTaskResult(
        task_path=task.module_path,
        backend_name=backend.alias,
        queue_name=task.queue_name,
        priority=task.priority,
        # A fair key's rows claim alike; their priority orders their key's own.
        claim_priority=0 if policy.concurrency and policy.concurrency.fair else task.priority,
        run_after=task.run_after,
        takes_context=task.takes_context,
        arguments=arguments,
        # Due later: SCHEDULED, outside the claim's index until staged.
        status=waiting_status(available_after, now),
        enqueued_at=now,
        available_after=available_after,
        unique_key=unique_key,
        concurrency_key=concurrency_key,
        rate_key=rate_key,
    )


def insert_row(backend: DatabaseBackend, row: DBTaskResult) -> None:
    """INSERT a new row in the caller's transaction (and NOTIFY its queue on Postgres).

    A row with a concurrency limit is READY only if it takes a free slot,
    else BLOCKED; a row due later waits BLOCKED without a slot, and the
    workers' repair gives it one when it is due (``dbtasks.sql.semaphores``).
    """
    db = backend.db_alias
    if not row.concurrency_key:
        _insert(backend, row)
        return
    concurrency = backend.config.policy(row.queue_name, row.task_path).concurrency
    assert concurrency is not None, "a concurrency key comes from a concurrency option"
    with transaction.atomic(using=db):
        if not (
            row.status == READY
            and semaphores.take_slot(db, backend.alias, row.concurrency_key, concurrency.limit)
        ):
            row.status = BLOCKED
        _insert(backend, row)


def _insert(backend: DatabaseBackend, row: DBTaskResult) -> None:
    db = backend.db_alias
    if connections[db].vendor == "postgresql":
        # One round trip: the INSERT, in the server's time (dbtasks/clock.py),
        # and the NOTIFY that wakes idle workers (a row due later wakes nobody).
        notify.insert_and_notify(
            row, db=db, wake=backend.uses_listen_notify() and row.status == READY
        )
    else:
        row.save(using=db, force_insert=True)
