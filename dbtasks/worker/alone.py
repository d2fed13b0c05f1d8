"""Tasks that run alone, so that a poison pill takes down only itself.

A task may end its worker's process itself: ``os._exit()``, a signal it
sends itself, a crash in C code. Lost-worker recovery (``recovery.py``) only
sees that the worker died with some attempts in flight. When there were
several it cannot tell which task did it, so it blames none (a *suspect*
attempt never fails its task), and marks every task whose worker died
under it ``run_alone``.

A row to run alone is claimed only by a worker with nothing else in flight,
and while it runs that worker claims nothing else (with ``--threads N`` the
other threads wait). If the process dies again, the one task in it is
blamed for sure: a pill fails within its attempts, and the tasks that once
shared its process run on and succeed.

Rows to run alone are their own range of ``dbtasks_ready_idx`` (``run_alone``
follows the queue in its key), so ordinary claims never read them. A worker
looks for them once per heartbeat interval (``refresh()``, one read of that
range), claims one when it is idle, and when one has waited longer than
``heartbeat_timeout`` (a backlog keeps every worker busy) it stops claiming
until its running tasks end, to make room for it.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from django.db.models import Min

from dbtasks.models import READY
from dbtasks.models import DBTaskResult

if TYPE_CHECKING:
    from dbtasks.worker.loop import Worker

Plan = list[tuple[int, bool]]  # the claims to try in turn: (limit, alone)


class AloneTasks:
    """Whether rows to run alone wait in a worker's queues, and what it claims meanwhile."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.waiting = False  # some wait in this worker's queues
        self.overdue = False  # one has waited long enough that this worker makes room

    def refresh(self, now: datetime) -> None:
        """Look for rows to run alone in this worker's queues (not the paused ones)."""
        worker = self.worker
        oldest = (
            DBTaskResult.objects.using(worker.db)
            .filter(
                status=READY,
                backend_name=worker.backend.alias,
                queue_name__in=[name for name in worker.queues if name not in worker.paused],
                run_alone=True,
                # Always true (a row set to run alone leaves its rate limit); it
                # makes the look fit dbtasks_ready_idx's condition.
                rate_key="",
            )
            .aggregate(oldest=Min("available_after"))["oldest"]
        )
        self.waiting = oldest is not None
        self.overdue = oldest is not None and now - oldest >= worker.config.heartbeat_timeout

    def plan(self, limit: int) -> Plan:
        """The claims to try for up to ``limit`` rows; call it under ``in_flight.lock``.

        A worker running a row alone claims nothing. An idle one first tries
        for a row to run alone, then, if others took them all, for ``limit``
        ordinary rows. A busy one claims ordinary rows, unless a row to run
        alone is overdue: then nothing, until its tasks end.
        """
        in_flight = self.worker.in_flight
        if limit < 1 or in_flight.running_alone():
            return []
        if self.waiting and in_flight.idle():
            return [(1, True), (limit, False)]
        if self.overdue:
            return []
        return [(limit, False)]

    def none_left(self) -> None:
        """A claim for a row to run alone found none: others took them."""
        self.waiting = self.overdue = False
