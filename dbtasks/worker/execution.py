"""Step 5 of the tour: run one claimed row.

``execute()`` calls the task and hands its outcome to ``outcomes.py``
(``record_until_done()``), which closes the attempt: the row's new state and
a ``DBTaskAttempt`` with the error, written together, guarded so that an
attempt someone else closed already (say, as ``WorkerLost``) is never
overwritten. It also sends Django's ``task_started`` and ``task_finished``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from inspect import iscoroutinefunction
from typing import Any

from asgiref.sync import async_to_sync
from django.core.exceptions import SuspiciousOperation
from django.utils import timezone

from dbtasks.cancellation import AttemptControl
from dbtasks.cancellation import cancellable
from dbtasks.cancellation import run_controlled
from dbtasks.compat import InvalidTask
from dbtasks.compat import TaskContext
from dbtasks.compat import TaskResult
from dbtasks.compat import task_finished
from dbtasks.compat import task_started
from dbtasks.exceptions import OutcomeNotStored
from dbtasks.exceptions import TaskArgumentsCorrupt
from dbtasks.exceptions import TaskCancelled
from dbtasks.exceptions import TaskFunctionMissing
from dbtasks.models import WAITING
from dbtasks.models import DBTaskAttempt
from dbtasks.models import DBTaskResult
from dbtasks.options import QueuePolicy
from dbtasks.serialization import PayloadTooLarge
from dbtasks.serialization import to_json_value
from dbtasks.worker.batching import Kept
from dbtasks.worker.batching import OutcomeBatch
from dbtasks.worker.outcomes import exception_path
from dbtasks.worker.outcomes import log_not_ours
from dbtasks.worker.outcomes import record_until_done

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def history_of(row: DBTaskResult) -> list[DBTaskAttempt]:
    """Return the row's finished attempts; no query on a first attempt."""
    if row.attempt_count <= 1:
        return []
    return list(row.attempts.all())


def call_task(
    result: TaskResult[..., Any],
    control: AttemptControl | None = None,
    *,
    max_size: int | None = None,
) -> Any:
    """Call the task function and return its JSON-ready return value.

    A return value over ``max_size`` bytes as JSON fails the attempt for good.
    With a ``control``, the task can be asked to stop (``dbtasks.cancellation``):
    it is the current attempt while the task runs, and an ``async def``
    task's coroutine is cancelled when it is asked.
    """
    task = result.task
    args = [TaskContext(task_result=result), *result.args] if task.takes_context else result.args
    if control is None:
        value = task.call(*args, **result.kwargs)
    elif iscoroutinefunction(task.func):
        # What Task.call() does for a coroutine function, with a handle to cancel it.
        func = async_to_sync(cancellable(task.func, control))
        value = run_controlled(control, lambda: func(*args, **result.kwargs))
    else:
        value = run_controlled(control, lambda: task.call(*args, **result.kwargs))
    try:
        return to_json_value(value, what="The task's return value", max_size=max_size)
    except PayloadTooLarge as error:
        raise OutcomeNotStored(f"{error} Raise OPTIONS['max_return_size'] if needed.") from None


def execute(
    row: DBTaskResult,
    *,
    worker_id: str,
    policy: QueuePolicy,
    sender: type,
    clock: Clock = timezone.now,
    abandon: threading.Event | None = None,
    ran: Callable[[], None] = lambda: None,
    max_return_size: int | None = None,
    control: AttemptControl | None = None,
    batch: OutcomeBatch | None = None,
) -> bool:
    """Run one claimed row to the end of its attempt, whatever the task does.

    ``ran()`` is called once the task's own code is done, before its outcome
    is written: the worker claims the next task meanwhile. ``control``: how
    the worker asks this attempt to stop (a cancel, its timeout). A success
    may be written later with others (``batch``, ``batching.py``): then the
    return value is True, and the batch settles the row once it is written.
    """
    abandon = abandon or threading.Event()
    record: dict[str, Any] = {"worker_id": worker_id, "policy": policy}
    history = history_of(row)
    try:
        result = row.to_task_result(history, row.load_task())
    except (TaskFunctionMissing, SuspiciousOperation, TaskArgumentsCorrupt, InvalidTask) as error:
        # No TaskResult, so no signals: record it and go on. A function that
        # cannot be imported follows the retry policy: during a rolling
        # deploy an old worker may claim a task only the new code defines,
        # and a later attempt on an updated worker will run it. A row that
        # is not a Task or is corrupt cannot get better: it fails at once.
        ran()
        logger.error("Task id=%s path=%s cannot run: %s", row.pk, row.task_path, error)
        retry = isinstance(error, TaskFunctionMissing)
        record_until_done(row, abandon=abandon, error=error, now=clock(), retry=retry, **record)
        return False

    task_started.send(sender, task_result=result)
    try:
        return_value = call_task(result, control, max_size=max_return_size)
    except BaseException as error:  # noqa: BLE001 - any failure is the task's outcome, never the worker's
        ran()
        reason = control.reason if control is not None else None
        if reason is not None and isinstance(error, asyncio.CancelledError):
            error = reason  # the coroutine was cancelled because the worker asked
        # Once a cancel was asked, whatever the task raised ends it: no retry.
        retry = not isinstance(reason, TaskCancelled)
        attempt = record_until_done(
            row, abandon=abandon, error=error, now=clock(), retry=retry, **record
        )
        if attempt is None:
            log_not_ours(row)
        elif row.status in WAITING:
            logger.warning(
                "Task id=%s path=%s attempt %d of %d failed (%s); retrying after %s",
                row.pk,
                row.task_path,
                row.attempt_count,
                policy.max_attempts,
                exception_path(error),
                row.available_after.isoformat(timespec="seconds"),
            )
        else:
            # Sent inside the except block: django.tasks logs it with the traceback.
            finished = row.to_task_result([*history, attempt], result.task)
            task_finished.send(sender, task_result=finished)
        return False

    ran()

    def recorded(attempt: DBTaskAttempt | None) -> None:
        if attempt is None:
            log_not_ours(row)
        else:
            done = row.to_task_result([*history, attempt], result.task)
            task_finished.send(sender, task_result=done)

    record |= {"now": clock(), "return_value": return_value}
    if batch is not None and batch.takes(row) and batch.add(Kept(row, record, then=recorded)):
        return True
    recorded(record_until_done(row, abandon=abandon, **record))
    return False
