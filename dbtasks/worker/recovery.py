"""Step 8 of the tour: close the attempts of workers that died.

A worker killed with SIGKILL (or whose machine vanished) cannot say so. Every
worker heartbeats into ``DBWorker``; any worker may close the RUNNING
attempts of a worker whose heartbeat is older than ``heartbeat_timeout`` as
``WorkerLost``, and the retry policy applies. It is safe when several workers
do it at once: ``record_attempt()`` only closes an attempt that is still
RUNNING for that worker, so exactly one of them wins each row.
"""

from __future__ import annotations

import logging
from datetime import datetime

from dbtasks.exceptions import WorkerLost
from dbtasks.models import RUNNING
from dbtasks.models import DBTaskResult
from dbtasks.models import DBWorker
from dbtasks.options import BackendOptions
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
    """Close up to ``limit`` attempts of lost workers; return how many.

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
        .order_by("last_attempted_at")[:limit]
    )
    closed = 0
    for row in orphans:
        error = WorkerLost(
            f"Worker {row.worker_id!r} stopped heartbeating while running attempt "
            f"{row.attempt_count} (no heartbeat for {config.heartbeat_timeout})."
        )
        lost_worker = row.worker_id
        policy = config.policy(row.queue_name, row.task_path)
        if record_attempt(row, worker_id=lost_worker, policy=policy, now=now, error=error):
            closed += 1
            logger.warning(
                "Task id=%s path=%s: worker %s lost; attempt %d closed, task now %s",
                row.pk,
                row.task_path,
                lost_worker,
                row.attempt_count,
                row.status,
            )
    # Forget dead workers once their attempts are closed (or were closed by others).
    DBWorker.objects.using(db).filter(heartbeat_at__lt=cutoff).exclude(
        worker_id=own_worker_id
    ).exclude(
        worker_id__in=DBTaskResult.objects.using(db).filter(status=RUNNING).values("worker_id")
    ).delete()
    return closed
