"""Step 5 of the tour: run one claimed row and record how it ended.

``execute()`` calls the task, then ``record_attempt()`` decides the outcome:
the row's new state (SUCCESSFUL, FAILED, or SCHEDULED for a retry after its
backoff) and
a ``DBTaskAttempt`` with the error, written together by
``dbtasks.sql.close.close_attempt()``. The write is guarded by (status, worker,
attempt number), so an attempt that another worker has already closed (say,
as ``WorkerLost``) is never overwritten.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import traceback
from collections.abc import Callable
from datetime import datetime
from datetime import timedelta
from inspect import iscoroutinefunction
from typing import Any

from asgiref.sync import async_to_sync
from django.core.exceptions import SuspiciousOperation
from django.db import DatabaseError
from django.db import router
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
from dbtasks.exceptions import PermanentFailure
from dbtasks.exceptions import RetryLater
from dbtasks.exceptions import TaskArgumentsCorrupt
from dbtasks.exceptions import TaskCancelled
from dbtasks.exceptions import TaskFunctionMissing
from dbtasks.models import FAILED
from dbtasks.models import SUCCESSFUL
from dbtasks.models import WAITING
from dbtasks.models import DBTaskAttempt
from dbtasks.models import DBTaskResult
from dbtasks.models import waiting_status
from dbtasks.options import QueuePolicy
from dbtasks.serialization import PayloadTooLarge
from dbtasks.serialization import to_json_value
from dbtasks.sql.close import close_attempt
from dbtasks.worker.connections import discard_if_broken
from dbtasks.worker.fencing import closed_by
from dbtasks.worker.storable import MAX_CLASS_PATH_LENGTH
from dbtasks.worker.storable import MAX_TRACEBACK_LENGTH
from dbtasks.worker.storable import is_permanent
from dbtasks.worker.storable import storable_text

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def exception_path(error: BaseException) -> str:
    return f"{type(error).__module__}.{type(error).__qualname__}"


def history_of(row: DBTaskResult) -> list[DBTaskAttempt]:
    """Return the row's finished attempts; no query on a first attempt."""
    if row.attempt_count <= 1:
        return []
    return list(row.attempts.all())


def record_attempt(
    row: DBTaskResult,
    *,
    worker_id: str,
    policy: QueuePolicy,
    now: datetime,
    error: BaseException | None = None,
    return_value: Any = None,
    retry: bool = True,
) -> DBTaskAttempt | None:
    """Close the row's running attempt; return it, or None if it was not ours.

    Success ends the task. A failure schedules a retry after the backoff,
    unless no attempt is left, the error is a ``PermanentFailure`` or
    ``TaskCancelled``, a cancel was requested, or the caller says retrying
    cannot help (``retry=False``).
    """
    changes: dict[str, Any] = {"worker_id": ""}
    if error is None:
        changes |= {"status": SUCCESSFUL, "finished_at": now, "return_value": return_value}
    elif (
        retry
        and policy.should_retry(row.attempt_count)
        and not isinstance(error, PermanentFailure | TaskCancelled)
        and row.cancel_requested_at is None
    ):
        available_after = now + retry_delay(policy, row, error)
        # After a backoff the retry is SCHEDULED (staging makes it READY when
        # due); with none it may be claimed at once.
        status = waiting_status(available_after, now)
        changes |= {"status": status, "available_after": available_after}
    else:
        changes |= {"status": FAILED, "finished_at": now}

    attempt = DBTaskAttempt(
        result_id=row.pk,
        number=row.attempt_count,
        worker_id=worker_id,
        started_at=row.last_attempted_at or now,
        stopped_at=now,
        outcome=FAILED if error else SUCCESSFUL,
        exception_class_path=(
            storable_text(exception_path(error), MAX_CLASS_PATH_LENGTH) if error else ""
        ),
        traceback=(
            storable_text("".join(traceback.format_exception(error)), MAX_TRACEBACK_LENGTH)
            if error
            else ""
        ),
    )
    if not close_attempt(row, worker_id=worker_id, changes=changes, attempt=attempt):
        return None
    for name, value in changes.items():
        setattr(row, name, value)
    return attempt


def retry_delay(policy: QueuePolicy, row: DBTaskResult, error: BaseException) -> timedelta:
    """The backoff after this failed attempt, or longer if the task asked (``RetryLater``)."""
    delay = policy.backoff(row.attempt_count)
    if isinstance(error, RetryLater):
        delay = max(delay, error.delay)
    return delay


def record_until_done(
    row: DBTaskResult,
    *,
    abandon: threading.Event,
    **kwargs: Any,
) -> DBTaskAttempt | None:
    """``record_attempt()``, retried while the database is unreachable.

    An outcome is never dropped because the database blinked. If the worker
    is stopped for good first (``abandon``), the row stays RUNNING and
    lost-worker recovery closes it once this process stops heartbeating.
    An outcome the database refuses for good (``storable.is_permanent``) is
    replaced by an ``OutcomeNotStored`` error saying why, with no retry: the
    attempt is recorded instead of being tried for ever.
    """
    try:
        return _record_while_transient(row, abandon=abandon, **kwargs)
    except Exception as error:
        if not is_permanent(error):
            raise
        logger.exception(
            "Task id=%s path=%s: the database refused attempt %d's outcome for good; "
            "recording that instead",
            row.pk,
            row.task_path,
            row.attempt_count,
        )
        substitute = OutcomeNotStored(
            f"The outcome could not be stored: {type(error).__name__}: {error}"
        )
        kwargs |= {"error": substitute, "return_value": None, "retry": False}
        return _record_while_transient(row, abandon=abandon, **kwargs)


def _record_while_transient(
    row: DBTaskResult, *, abandon: threading.Event, **kwargs: Any
) -> DBTaskAttempt | None:
    delay = 0.1
    while True:
        try:
            return record_attempt(row, **kwargs)
        except DatabaseError as error:
            if is_permanent(error):
                raise
            logger.warning(
                "Task id=%s path=%s: cannot record the outcome yet, retrying in %.1fs",
                row.pk,
                row.task_path,
                delay,
                exc_info=True,
            )
            discard_if_broken(row._state.db or router.db_for_write(DBTaskResult, instance=row))
            if abandon.wait(delay):
                return None
            delay = min(delay * 2, 10)


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
) -> None:
    """Run one claimed row to the end of its attempt, whatever the task does.

    ``ran()`` is called once the task's own code is done, before its outcome
    is written: the worker claims the next task meanwhile. ``control``: how
    the worker asks this attempt to stop (a cancel, its timeout).
    """
    abandon = abandon or threading.Event()
    record: dict[str, Any] = {"worker_id": worker_id, "policy": policy, "abandon": abandon}
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
        record_until_done(row, error=error, now=clock(), retry=retry, **record)
        return

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
        attempt = record_until_done(row, error=error, now=clock(), retry=retry, **record)
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
        return

    ran()
    attempt = record_until_done(row, now=clock(), return_value=return_value, **record)
    if attempt is None:
        log_not_ours(row)
    else:
        task_finished.send(sender, task_result=row.to_task_result([*history, attempt], result.task))


def log_not_ours(row: DBTaskResult) -> None:
    """The outcome write was refused: say who closed the attempt, as far as is known."""
    db = row._state.db or router.db_for_write(DBTaskResult, instance=row)
    try:
        who = closed_by(db, row.pk, row.attempt_count)
    except DatabaseError:
        who = "unknown: the database could not say"
        discard_if_broken(db)
    logger.warning(
        "Task id=%s path=%s: attempt %d was closed by someone else (%s); its outcome is discarded",
        row.pk,
        row.task_path,
        row.attempt_count,
        who,
    )
