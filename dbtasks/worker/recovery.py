"""Step 8 of the tour: close the attempts of workers that died.

A worker killed with SIGKILL (or whose machine vanished) cannot say so. Every
worker heartbeats into ``DBWorker``; any worker may close the RUNNING
attempts of a worker whose heartbeat is older than ``heartbeat_timeout`` as
``WorkerLost``, and the retry policy applies. It is safe when several workers
do it at once: ``record_attempt()`` only closes an attempt that is still
RUNNING for that worker, so exactly one of them wins each row.

A task may have killed the process itself (a poison pill: ``os._exit()``, a
signal, a crash in C code). With one attempt in flight the blame is
certain. With several, any of them may have done it: each is closed as a
*suspect*, which never fails its task, and every task whose worker died
under it runs alone from then on (``alone.py``), so the next death is
blamed on the one task that was in the process.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from dbtasks.exceptions import WorkerLost
from dbtasks.models import RUNNING
from dbtasks.models import DBTaskResult
from dbtasks.models import DBWorker
from dbtasks.options import BackendOptions
from dbtasks.sql.transactions import short_transaction
from dbtasks.worker.outcomes import record_attempt

logger = logging.getLogger(__name__)


def recover_lost_tasks(
    *,
    db: str,
    backend_name: str,
    config: BackendOptions,
    now: datetime,
    limit: int = 100,
    own_worker_id: str = "",
) -> int:
    """Close the attempts of up to ``limit`` lost workers' rows; return how many.

    ``own_worker_id``: the worker doing this never takes itself for lost. A
    process that was paused (SIGSTOP, a VM frozen) past the timeout finds
    its own heartbeat stale when it resumes, yet its tasks are running.
    Others may recover its attempts meanwhile; it never does so itself.
    """
    cutoff = now - config.heartbeat_timeout
    live_workers = DBWorker.objects.using(db).filter(heartbeat_at__gte=cutoff)
    orphans = (
        DBTaskResult.objects.using(db)
        .filter(status=RUNNING, backend_name=backend_name, last_attempted_at__lt=cutoff)
        .exclude(worker_id__in=live_workers.values("worker_id"))
        .exclude(worker_id=own_worker_id)
        .order_by("last_attempted_at")
        .values_list("worker_id", flat=True)[:limit]
    )
    closed = 0
    for lost_worker in dict.fromkeys(orphans):
        closed += close_lost_attempts(
            db, lost_worker, backend_name=backend_name, config=config, now=now
        )
    # Forget dead workers once their attempts are closed (or were closed by others).
    DBWorker.objects.using(db).filter(heartbeat_at__lt=cutoff).exclude(
        worker_id=own_worker_id
    ).exclude(
        worker_id__in=DBTaskResult.objects.using(db).filter(status=RUNNING).values("worker_id")
    ).delete()
    return closed


def close_lost_attempts(
    db: str, lost_worker: str, *, backend_name: str, config: BackendOptions, now: datetime
) -> int:
    """Close the attempts ``lost_worker`` had in flight; return how many this call closed.

    Its RUNNING rows are locked first (Postgres; on SQLite the transaction
    holds the write lock), so workers recovering it at once agree on how
    many were in flight: the second waits, then finds them closed.
    """
    cutoff = now - config.heartbeat_timeout
    closed = 0
    with short_transaction(db, idle_limit=config.heartbeat_timeout):
        in_flight = list(
            DBTaskResult.objects.using(db)
            .select_for_update()
            .filter(status=RUNNING, backend_name=backend_name, worker_id=lost_worker)
            .order_by("pk")
        )
        for row in in_flight:
            if row.last_attempted_at is None or row.last_attempted_at >= cutoff:
                continue  # claimed since the cutoff: not lost (yet)
            error, suspect = lost_error(row, in_flight, config)
            policy = config.policy(row.queue_name, row.task_path)
            if record_attempt(
                row,
                worker_id=lost_worker,
                policy=policy,
                now=now,
                error=error,
                suspect=suspect,
                run_alone=True,
            ):
                closed += 1
                logger.warning(
                    "Task id=%s path=%s: worker %s lost; attempt %d closed, task now %s "
                    "(%s; it runs alone from now on)",
                    row.pk,
                    row.task_path,
                    lost_worker,
                    row.attempt_count,
                    row.status,
                    f"1 of {len(in_flight)} in flight, a suspect"
                    if suspect
                    else "the only one in flight",
                )
    return closed


def lost_error(
    row: DBTaskResult, in_flight: Sequence[DBTaskResult], config: BackendOptions
) -> tuple[WorkerLost, bool]:
    """The error that closes ``row``'s attempt, and whether the attempt is only a suspect."""
    lost = (
        f"Worker {row.worker_id!r} stopped heartbeating while running attempt {row.attempt_count}"
    )
    silence = f"(no heartbeat for {config.heartbeat_timeout})"
    others = len(in_flight) - 1
    if others:
        tasks = "task" if others == 1 else "tasks"
        return WorkerLost(
            f"{lost} and {others} other {tasks} {silence}. Any of them may have ended the "
            "process, so this attempt is not held against this task: it runs again, alone "
            "(even if it was its last attempt)."
        ), True
    if row.run_alone:
        return WorkerLost(
            "The worker process died while this task ran alone (exit by the task itself: "
            f"likely os._exit, a signal or a crash in C code). {lost} {silence}."
        ), False
    return WorkerLost(f"{lost} {silence}."), False
