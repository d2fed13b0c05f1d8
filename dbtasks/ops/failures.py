"""The latest failed attempts, and what became of their tasks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from dbtasks.backend import DatabaseBackend
from dbtasks.models import FAILED
from dbtasks.models import READY
from dbtasks.models import RUNNING
from dbtasks.models import DBTaskAttempt
from dbtasks.ops.text import last_traceback_line

RETRIED = "Retried"  # a later attempt has run (or runs now)
WILL_RETRY = "Will retry"  # this was the latest attempt; the task waits for its backoff
GAVE_UP = "Gave up"  # this was the last attempt; the task is FAILED


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
    if attempt.result.status in (READY, RUNNING):
        return WILL_RETRY
    return GAVE_UP
