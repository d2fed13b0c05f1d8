"""How a worker stops: wait for running tasks within the grace period, then give back the rest.

``drain()`` runs once the loop has stopped claiming (a signal, ``--max-tasks``
or ``--oneshot``). Attempts still running when the grace period ends are
closed as ``WorkerShutdown`` (the retry policy applies); rows claimed but
never started are handed back with their attempt uncounted.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from django.db import DatabaseError

from dbtasks.exceptions import AttemptClosed
from dbtasks.exceptions import WorkerShutdown
from dbtasks.worker.outcomes import record_attempt

if TYPE_CHECKING:
    from dbtasks.worker.loop import Worker

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FORCED = 1
# Too many threads stuck in tasks past their timeout: start a fresh process.
EXIT_HUNG = 3
# An outcome could not be recorded for longer than heartbeat_timeout (outage.py).
EXIT_STALLED = 4


def drain(worker: Worker) -> int:
    """Wait for running tasks within the grace period; give back the rest."""
    if worker.in_flight:
        logger.info("Worker %s waiting for %d running task(s)", worker.id, len(worker.in_flight))
    while worker.in_flight and not worker.abandon.is_set():
        remaining = 0.5  # --max-tasks: no deadline until a signal asks to stop
        if worker.stop_requested_at is not None:
            deadline = worker.stop_requested_at + worker.options.grace
            remaining = min(deadline - time.monotonic(), remaining)
            if remaining <= 0:
                logger.warning(
                    "Worker %s: grace period of %gs is over", worker.id, worker.options.grace
                )
                break
        worker.wait(remaining)
        worker.wake.clear()
        worker.tend()
    if not worker.in_flight:
        return EXIT_OK
    worker.abandon.set()
    if not worker.outage.stalled:  # else the database would not take it either
        give_back(worker)
    return EXIT_FORCED


def give_back(worker: Worker) -> None:
    """Close the attempts still running as WorkerShutdown; hand back the unstarted."""
    worker.batch.write()  # outcomes kept to write together (batching.py) are not lost
    started, unstarted = worker.in_flight.unstarted()
    for row in unstarted:
        worker.runner.hand_back(row, "the worker stopped before a thread was free")
    for row in started:
        error = WorkerShutdown(
            f"Worker {worker.id!r} was stopped while running attempt {row.attempt_count}."
        )
        # Ask the task to stop too; and the heartbeat, still beating, then
        # does not take this close for someone else's.
        worker.interrupts.interrupt(row.pk, row.attempt_count, AttemptClosed(str(error)))
        try:
            attempt = record_attempt(
                row,
                worker_id=worker.id,
                policy=worker.config.policy(row.queue_name, row.task_path),
                now=worker.clock(),
                error=error,
            )
        except DatabaseError:
            # Recovery closes it as WorkerLost once our heartbeat stops.
            logger.exception("Task id=%s: could not record the shutdown", row.pk)
        else:
            if attempt is not None:
                logger.warning(
                    "Task id=%s path=%s given back (WorkerShutdown); now %s",
                    row.pk,
                    row.task_path,
                    row.status,
                )
            # Else the task's own thread recorded its outcome just now.
