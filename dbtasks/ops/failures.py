"""The latest failed attempts and what became of their tasks; the latest cancellations.

A cancelled task is not a failure: it never ran (or its run was stopped on
purpose), so it is listed apart, and a failed attempt whose task was then
cancelled says so instead of "Gave up".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models.functions import Coalesce

from dbtasks.backend import DatabaseBackend
from dbtasks.minutes import CANCELLATION_PATH
from dbtasks.models import CANCELLED_TASKS
from dbtasks.models import FAILED
from dbtasks.models import UNFINISHED
from dbtasks.models import DBTaskAttempt
from dbtasks.models import DBTaskResult
from dbtasks.ops.text import last_traceback_line

RETRIED = "Retried"  # a later attempt has run (or runs now)
WILL_RETRY = "Will retry"  # this was the latest attempt; the task waits for its backoff
GAVE_UP = "Gave up"  # this was the last attempt; the task is FAILED
CANCELLED = "Cancelled"  # the task was cancelled after this attempt


@dataclass(frozen=True, slots=True, kw_only=True)
class FailureInfo:
    """One failed attempt, with enough of its error to recognise it."""

    attempt_id: int
    result_id: int
    task_path: str
    queue_name: str
    number: int  # which attempt of the task this was
    worker_id: str
    stopped_at: datetime
    exception_class_path: str
    message: str  # the traceback's last line, e.g. "ValueError: boom"
    then: str  # what became of the task: RETRIED, WILL_RETRY or GAVE_UP

    @property
    def gave_up(self) -> bool:
        return self.then == GAVE_UP


def latest_failures(backend: DatabaseBackend, *, limit: int = 10) -> list[FailureInfo]:
    """The ``limit`` most recent failed attempts of ``backend``, newest first.

    Newest means highest id: attempts are inserted as they stop, so the id
    order is the stop order, and the primary key index serves it with no
    index on ``stopped_at``.
    """
    rows = (
        DBTaskAttempt.objects.using(backend.db_alias)
        .filter(outcome=FAILED, result__backend_name=backend.alias)
        .exclude(exception_class_path=CANCELLATION_PATH)
        .select_related("result")
        # Arguments and return values can be large and are not shown.
        .only(
            "number",
            "worker_id",
            "stopped_at",
            "exception_class_path",
            "traceback",
            "result__task_path",
            "result__queue_name",
            "result__status",
            "result__attempt_count",
            "result__cancelled_at",
            "result__cancel_requested_at",
        )
        .order_by("-pk")[:limit]
    )
    return [
        FailureInfo(
            attempt_id=row.pk,
            result_id=row.result_id,
            task_path=row.result.task_path,
            queue_name=row.result.queue_name,
            number=row.number,
            worker_id=row.worker_id,
            stopped_at=row.stopped_at,
            exception_class_path=row.exception_class_path,
            message=last_traceback_line(row.traceback) or row.exception_class_path,
            then=_after_attempt(row),
        )
        for row in rows
    ]


def _after_attempt(attempt: DBTaskAttempt) -> str:
    """What became of the task after this failed attempt."""
    if attempt.number < attempt.result.attempt_count:
        return RETRIED
    if attempt.result.cancelled_at is not None or (
        attempt.result.status == FAILED and attempt.result.cancel_requested_at is not None
    ):
        return CANCELLED
    if attempt.result.status in UNFINISHED:
        return WILL_RETRY
    return GAVE_UP


@dataclass(frozen=True, slots=True, kw_only=True)
class CancellationInfo:
    """One cancelled task: before it ran, or while it ran."""

    result_id: int
    task_path: str
    queue_name: str
    cancelled_at: datetime
    attempts: int  # runs started, the stopped one included


def latest_cancellations(backend: DatabaseBackend, *, limit: int = 5) -> list[CancellationInfo]:
    """The ``limit`` most recently cancelled tasks of ``backend``, newest first.

    ``dbtasks_cancelled_idx`` and ``dbtasks_cancel_requested_idx`` hold only
    cancelled rows, so this reads a few index entries whatever the size of
    the table.
    """
    rows = (
        DBTaskResult.objects.using(backend.db_alias)
        .filter(CANCELLED_TASKS, backend_name=backend.alias)
        .annotate(when=Coalesce("cancelled_at", "finished_at"))
        .order_by("-when", "-pk")
        .values_list("pk", "task_path", "queue_name", "when", "attempt_count")[:limit]
    )
    return [
        CancellationInfo(
            result_id=pk,
            task_path=task_path,
            queue_name=queue_name,
            cancelled_at=cancelled_at,
            attempts=attempts,
        )
        for pk, task_path, queue_name, cancelled_at, attempts in rows
        if cancelled_at is not None  # always, by the filter; this tells the type checker
    ]
