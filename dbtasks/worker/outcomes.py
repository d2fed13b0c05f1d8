"""Step 5 of the tour, continued: close a run's attempt with its outcome.

``record_attempt()`` decides the row's new state (SUCCESSFUL, FAILED, or
SCHEDULED for a retry after its backoff) and writes it with a
``DBTaskAttempt`` holding the error, together, through
``dbtasks.sql.close.close_attempt()``. The write is guarded by (status,
worker, attempt number), so an attempt that another worker has already
closed (say, as ``WorkerLost``) is never overwritten. ``record_until_done()``
retries it while the database is unreachable.
"""

from __future__ import annotations

import logging
import threading
import traceback
from datetime import datetime
from datetime import timedelta
from typing import Any
from typing import Required
from typing import TypedDict
from typing import Unpack

from django.db import DatabaseError
from django.db import router

from dbtasks.exceptions import OutcomeNotStored
from dbtasks.exceptions import PermanentFailure
from dbtasks.exceptions import RetryLater
from dbtasks.exceptions import TaskCancelled
from dbtasks.models import FAILED
from dbtasks.models import SUCCESSFUL
from dbtasks.models import DBTaskAttempt
from dbtasks.models import DBTaskResult
from dbtasks.models import waiting_status
from dbtasks.options import QueuePolicy
from dbtasks.sql.close import close_attempt
from dbtasks.worker.connections import discard_if_broken
from dbtasks.worker.fencing import closed_by
from dbtasks.worker.storable import MAX_CLASS_PATH_LENGTH
from dbtasks.worker.storable import MAX_TRACEBACK_LENGTH
from dbtasks.worker.storable import is_permanent
from dbtasks.worker.storable import storable_text

logger = logging.getLogger(__name__)


def exception_path(error: BaseException) -> str:
    return f"{type(error).__module__}.{type(error).__qualname__}"


class Outcome(TypedDict, total=False):
    """``outcome_of()``'s arguments after the row: how an attempt ended."""

    worker_id: Required[str]
    policy: Required[QueuePolicy]
    now: Required[datetime]
    error: BaseException | None
    return_value: Any
    retry: bool
    suspect: bool
    run_alone: bool


def record_attempt(row: DBTaskResult, **outcome: Unpack[Outcome]) -> DBTaskAttempt | None:
    """Close the row's running attempt; return it, or None if it was not ours.

    What is written is ``outcome_of()``'s.
    """
    changes, attempt = outcome_of(row, **outcome)
    worker_id = outcome["worker_id"]
    if not close_attempt(row, worker_id=worker_id, changes=changes, attempt=attempt):
        return None
    apply_changes(row, changes)
    return attempt


def apply_changes(row: DBTaskResult, changes: dict[str, Any]) -> None:
    """The row in memory as a close with ``changes`` left it in the database."""
    for name, value in changes.items():
        setattr(row, name, value)


def outcome_of(
    row: DBTaskResult,
    *,
    worker_id: str,
    policy: QueuePolicy,
    now: datetime,
    error: BaseException | None = None,
    return_value: Any = None,
    retry: bool = True,
    suspect: bool = False,
    run_alone: bool = False,
) -> tuple[dict[str, Any], DBTaskAttempt]:
    """The row's new state (the changes to its columns) and its attempt's row, to write together.

    Success ends the task. A failure schedules a retry after the backoff,
    unless no attempt is left, the error is a ``PermanentFailure`` or
    ``TaskCancelled``, a cancel was requested, or the caller says retrying
    cannot help (``retry=False``). A ``suspect`` failure (its worker died
    with other attempts in flight, any of which may have killed it) is
    retried even if no attempt is left: a task never fails on a suspicion.
    ``run_alone``: the task runs alone from now on (``alone.py``).
    """
    changes: dict[str, Any] = {"worker_id": ""}
    if run_alone:
        # Claimed alone, one at a time, so outside its rate limit (claimed per key).
        changes |= {"run_alone": True, "rate_key": ""}
    if error is None:
        changes |= {"status": SUCCESSFUL, "finished_at": now, "return_value": return_value}
    elif (
        retry
        and (suspect or policy.should_retry(row.attempt_count))
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
    return changes, attempt


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
