"""Fenced work: a task whose attempt someone else closed is asked to stop.

The close of an attempt is guarded (``dbtasks/sql/close.py``): once
lost-worker recovery has closed an attempt, the outcome its worker writes
later is refused. That fences the *outcome*; the *work* would go on, side by
side with the retry that may already run elsewhere. A worker paused past the
heartbeat timeout (SIGSTOP, a frozen VM, a host cut off from the database)
resumes with attempts that are no longer its own.

So at every heartbeat the worker reads the rows its task threads run (one
query by primary key, none while nothing runs) and

- passes on cancel requests (``cancel_requested_at``) as ``TaskCancelled``;
- asks an attempt that is no longer RUNNING for this worker and attempt
  number to stop with ``AttemptClosed``, and logs one WARNING naming the
  task, the attempt and who closed it (the error recorded for that attempt:
  ``WorkerLost`` means another worker's recovery).

A sync task sees it at its next ``raise_if_cancelled()``, an async task's
coroutine is cancelled; whatever it ends with is discarded.
"""

from __future__ import annotations

import logging

from dbtasks.exceptions import AttemptClosed
from dbtasks.exceptions import TaskCancelled
from dbtasks.models import RUNNING
from dbtasks.models import DBTaskAttempt
from dbtasks.models import DBTaskResult
from dbtasks.worker.interrupts import Interrupts

logger = logging.getLogger(__name__)


def watch_attempts(interrupts: Interrupts, *, db: str, worker_id: str) -> None:
    """Pass on cancel requests and fence closed attempts (after each beat)."""
    running = interrupts.snapshot()
    if not running:
        return
    rows = {
        pk: (status, owner, attempt, cancel_at)
        for pk, status, owner, attempt, cancel_at in DBTaskResult.objects.using(db)
        .filter(pk__in=[pk for pk, _ in running])
        .values_list("pk", "status", "worker_id", "attempt_count", "cancel_requested_at")
    }
    for pk, attempt in running:
        status, owner, current, cancel_at = rows.get(pk, (None, "", 0, None))
        if status == RUNNING and owner == worker_id and current == attempt:
            if cancel_at is not None:
                reason = TaskCancelled(
                    f"Cancelled at {cancel_at.isoformat(timespec='seconds')} while running."
                )
                if interrupts.interrupt(pk, attempt, reason):
                    logger.info(
                        "Task id=%s attempt %d: cancel requested, asking it to stop", pk, attempt
                    )
            continue
        who = closed_by(db, pk, attempt) if status is not None else "the row was deleted"
        fenced = AttemptClosed(
            f"Attempt {attempt} of task id={pk} was closed by someone else ({who}) "
            "while it ran; its outcome is discarded."
        )
        if interrupts.fence(pk, attempt, fenced):
            logger.warning(
                "Task id=%s attempt %d was closed by someone else (%s); "
                "asking it to stop, its outcome will be discarded",
                pk,
                attempt,
                who,
            )


def closed_by(db: str, row_id: int, attempt: int) -> str:
    """Who closed attempt ``attempt`` of row ``row_id``, as the recorded error tells."""
    recorded = (
        DBTaskAttempt.objects.using(db)
        .filter(result_id=row_id, number=attempt)
        .values_list("exception_class_path", "traceback")
        .first()
    )
    if recorded is None:
        return "no attempt recorded; the row was handed back or purged"
    path, text = recorded
    name = path.rpartition(".")[2] or "no error"
    # The last line of the traceback is the error's message, e.g. which worker was lost.
    message = text.strip().rpartition("\n")[2]
    if name == "WorkerLost":
        return f"lost-worker recovery: {message}"
    return f"recorded as {name}: {message}" if message else f"recorded as {name}"
