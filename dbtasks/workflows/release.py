"""When a member finishes for good, count it down in the members waiting on it.

``member_finished()`` runs in the transaction that records the finish (the
close of the member's last attempt, or its cancellation), so the two commit
together or not at all. Each close is a guarded UPDATE that succeeds once
per attempt, and ``settled`` counts each member once, so a finish is never
counted twice: not under at-least-once delivery, not when lost-worker
recovery races the worker, not when the admin re-queues a finished member.

The counter is decremented atomically (``waiting_for - 1`` in the UPDATE,
under the row's lock), so of members finishing at the same moment on
different workers exactly one sees it reach zero; that one releases the
dependant (BLOCKED -> READY, guarded on BLOCKED). A callback is therefore
enqueued exactly once: a fact in the database, not a hope in the workers.

Rows are locked in one order everywhere (a task row, then member rows by
ascending id, then a dependant's task row; dependants always have higher ids
than what they wait on), so concurrent finishes and cancels queue behind
each other instead of deadlocking.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import F

from dbtasks.backend import DatabaseBackend
from dbtasks.compat import task_backends
from dbtasks.exceptions import TaskArgumentsCorrupt
from dbtasks.models import BLOCKED
from dbtasks.models import FAILED
from dbtasks.models import READY
from dbtasks.models import SUCCESSFUL
from dbtasks.models import DBTaskAttempt
from dbtasks.models import DBTaskResult
from dbtasks.models import DBTaskResultQuerySet
from dbtasks.models import waiting_status
from dbtasks.sql import semaphores
from dbtasks.workflows.models import VALUE
from dbtasks.workflows.models import DBWorkflowMember


def member_finished(db: str, result_id: int, now: datetime) -> None:
    """Count a member that just finished for good in each member waiting on it.

    ``now`` is the time the finish is recorded with: the worker's reading of
    the database server's clock (``dbtasks/clock.py``), so a released step is
    due by the clock every worker claims with, not by this host's.
    """
    members = DBWorkflowMember.objects.using(db)
    if not members.filter(pk=result_id, settled=False).update(settled=True):
        return  # counted already, or its member row was purged
    dependants = members.filter(pk=result_id).values_list("dependants", flat=True).get()
    for dependant in sorted(dependants):
        counted = members.filter(pk=dependant, waiting_for__gt=0).update(
            waiting_for=F("waiting_for") - 1
        )
        # Under the lock the UPDATE took, so this reads this transaction's count.
        if counted and not members.filter(pk=dependant).values_list("waiting_for", flat=True).get():
            release(db, dependant, now)


def release(db: str, result_id: int, now: datetime) -> None:
    """Everything ``result_id`` waited on has finished: make it READY, or cancel it."""
    member = DBWorkflowMember.objects.using(db).get(pk=result_id)
    tasks = DBTaskResult.objects.using(db)
    by_id = tasks.in_bulk(member.waits_on)
    finished = [by_id[pk] for pk in member.waits_on if pk in by_id]
    if member.receives == VALUE:
        previous = finished[0] if finished else None
        if previous is None or previous.status != SUCCESSFUL:
            cancel_dependant(db, result_id, because=failed_step(previous, member), now=now)
            return
        passed: Any = previous.return_value
    else:
        passed = [outcome(row) for row in finished]
    row = tasks.get(pk=result_id)
    try:
        args, kwargs = row.stored_arguments()
    except TaskArgumentsCorrupt as error:
        # Raising here would undo the finish being recorded; the member fails instead.
        cancel_dependant(db, result_id, because=str(error), now=now)
        return
    available_after = max(now, row.run_after or now)
    # Due later (its run_after): SCHEDULED, staged to READY when due.
    status = waiting_status(available_after, now)
    backend = task_backends[row.backend_name] if row.backend_name in settings.TASKS else None
    if row.concurrency_key and not takes_slot(db, backend, row, status):
        status = BLOCKED  # waits for its key's next free slot, like any limited row
    released = tasks.filter(pk=result_id, status=BLOCKED).update(
        status=status,
        arguments={"args": [passed, *args], "kwargs": kwargs},
        available_after=available_after,
    )
    if released and status != BLOCKED and isinstance(backend, DatabaseBackend):
        backend.notify_workers(row.queue_name)  # as enqueue checked; else workers poll


def takes_slot(db: str, backend: object, row: DBTaskResult, status: str) -> bool:
    """Whether a released member with a concurrency limit gets a slot of its key now.

    Only a member that is due may; the others wait BLOCKED without one, and
    the semaphore's give-back (or the workers' repair) hands them one later.
    """
    if status != READY or not isinstance(backend, DatabaseBackend):
        return False
    concurrency = backend.config.policy(row.queue_name, row.task_path).concurrency
    if concurrency is None:  # the option was removed since: nothing limits it
        return True
    return semaphores.take_slot(db, backend.alias, row.concurrency_key, concurrency.limit)


def failed_step(previous: DBTaskResult | None, member: DBWorkflowMember) -> str:
    """Why a chain step will never run: the step before it, named, and its error."""
    if previous is None:
        return f"the step before it in workflow {member.workflow_id} was deleted"
    error = outcome(previous)["error"]
    return (
        f"step {previous.pk} ({previous.task_path}) of workflow {member.workflow_id} "
        f"did not succeed: {error}"
    )


def cancel_dependant(db: str, result_id: int, *, because: str, now: datetime) -> None:
    """A blocked member that can never run ends FAILED (cancelled), and counts as finished."""
    cancelled = (
        DBTaskResult.objects.using(db)
        .filter(pk=result_id, status=BLOCKED)
        .update(status=FAILED, finished_at=now, cancelled_at=now, cancel_reason=because)
    )
    if cancelled:
        member_finished(db, result_id, now)


def cancel_members(rows: DBTaskResultQuerySet, now: datetime) -> int:
    """Cancel these unstarted workflow members; count each as finished. Return how many.

    Called inside a transaction. Member rows are locked first, then task
    rows (both in id order), the order every finish takes them in.
    """
    db = rows.db
    ids = sorted(rows.values_list("pk", flat=True))
    if not ids:
        return 0
    list(DBWorkflowMember.objects.using(db).filter(pk__in=ids).select_for_update().order_by("pk"))
    locked = sorted(rows.filter(pk__in=ids).select_for_update().values_list("pk", flat=True))
    cancelled = (
        DBTaskResult.objects.using(db)
        .filter(pk__in=locked)
        .update(status=FAILED, finished_at=now, cancelled_at=now, worker_id="")
    )
    for result_id in locked:
        member_finished(db, result_id, now)
    return cancelled


def outcome(row: DBTaskResult) -> dict[str, Any]:
    """How a member ended, as its callback receives it (JSON)."""
    error = None
    exception_class_path = None
    if row.status == FAILED:
        errors = row.cancellation_errors()
        if not errors:
            last = DBTaskAttempt.objects.using(row._state.db).filter(result=row).last()
            errors = [last.to_task_error()] if last is not None else []
        if errors:
            exception_class_path = errors[-1].exception_class_path
            lines = errors[-1].traceback.strip().splitlines()
            error = lines[-1] if lines else exception_class_path
    return {
        "id": str(row.pk),
        "task": row.task_path,
        "status": row.status,
        "return_value": row.return_value if row.status == SUCCESSFUL else None,
        "error": error,
        "exception_class_path": exception_class_path,
    }
