"""The task threads' side of a worker: run a claimed row, then maybe claim the next.

``Runner.run_one`` is what each thread of the pool (``pool.py``) calls with
a row the main thread claimed for it. On SQLite the thread then claims its
own next task (``_chain``), see ``InFlight.free_threads`` for why. The
time each row holds its thread sets how many rows a claim takes ahead
(``ahead.py``).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from django.db import DatabaseError

from dbtasks.models import DBTaskResult
from dbtasks.sql.claim import unclaim
from dbtasks.worker.connections import discard_if_broken
from dbtasks.worker.connections import recheck_before_task
from dbtasks.worker.execution import execute

if TYPE_CHECKING:
    from dbtasks.worker.loop import Worker

logger = logging.getLogger(__name__)


class Runner:
    """Runs claimed rows in the worker's task threads."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def run_one(self, row: DBTaskResult, waited: bool) -> None:
        """Run a claimed row (in a task thread), then any this thread claims after it.

        ``waited``: the thread sat idle until this row came (see _run_claimed).
        """
        worker = self.worker
        if not worker.in_flight.start(row):
            return  # handed back by stopping.give_back() while it waited
        next_row: DBTaskResult | None = row
        ping = waited
        while next_row is not None:
            next_row = self._chain() if self._run_claimed(next_row, ping=ping) else None
            ping = False

    def _run_claimed(self, row: DBTaskResult, *, ping: bool) -> bool:
        """Run one claimed row to the end of its attempt; return whether to claim the next.

        ``ping``: have Django health-check the thread's connection before the
        task (``CONN_HEALTH_CHECKS``), so a connection the server dropped while
        the thread sat idle costs a reconnect, not the task's attempt. A thread
        that went straight from its last task to this one skips the round trip.
        """
        worker = self.worker
        if worker.stop_requested:
            # Stopping: a row that has not started goes back as it was.
            self.hand_back(row, "the worker is stopping")
            return self._finished(row, ran=False)
        recheck_before_task(worker.db, health_check=ping)
        if not worker.outage.connect(row):
            # The server refuses us: the main thread hands the row back (outage.py).
            return self._finished(row, ran=False)
        completed = kept = False
        began = time.monotonic()
        policy = worker.config.policy(row.queue_name, row.task_path)
        control = worker.interrupts.begin(row, policy.timeout)
        try:
            kept = execute(
                row,
                worker_id=worker.id,
                policy=policy,
                sender=type(worker.backend),
                clock=worker.clock,
                abandon=worker.abandon,
                ran=lambda: self._ran(row),
                max_return_size=worker.config.max_return_size,
                control=control,
                batch=worker.batch,
            )
            completed = True
        finally:
            worker.interrupts.end(row)
            if not completed:
                # execute() records every task failure itself; reaching here
                # is a bug in dbtasks (the thread's excepthook prints it).
                # Stop, so the row is recovered once we are gone instead of
                # staying RUNNING under a live heartbeat.
                logger.critical("Worker %s failed to run task id=%s; stopping", worker.id, row.pk)
                worker.request_stop()
        worker.ahead.ran(time.monotonic() - began)
        return self._finished(row, kept=kept)

    def _ran(self, row: DBTaskResult) -> None:
        """The task's code is done: on Postgres its thread is as good as free.

        See ``InFlight.free_threads``.
        """
        worker = self.worker
        # From now on this thread closes the attempt: the heartbeat must not
        # take that close for someone else's (dbtasks/worker/fencing.py).
        worker.interrupts.code_done(row)
        worker.outage.recording(row)
        if worker.overlap:
            worker.in_flight.code_done(row)
            worker.wake.set()

    def _finished(self, row: DBTaskResult, *, ran: bool = True, kept: bool = False) -> bool:
        """Forget a row whose attempt is closed; return whether this thread claims the next.

        ``kept``: its outcome went to the batch (``batching.py``), which settles
        the row once it is written, maybe already.
        """
        worker = self.worker
        if not kept:
            worker.outage.recorded(row)
        with worker.in_flight.lock:
            if not kept:
                worker.in_flight.finish(row, ran=ran)
            # A thread the worker gave up on (past its task's timeout) ends here.
            chain = (
                not worker.overlap
                and self._may_claim()
                and not (worker.pool is not None and worker.pool.is_retired())
            )
            if chain:
                worker.in_flight.chaining += (
                    1  # keep this thread's place: the main thread leaves it
                )
        if not chain:
            worker.wake.set()
        return chain

    def _may_claim(self) -> bool:
        worker = self.worker
        limit = worker.options.max_tasks
        return not worker.stopping.is_set() and (limit is None or worker.in_flight.claimed < limit)

    def _chain(self) -> DBTaskResult | None:
        """SQLite: claim this thread's next task itself; None ends the chain.

        SQLite takes one writer at a time, so a claim by the main thread
        could not overlap with this thread's last write anyway; handing the
        row over would only add a lock wait and a thread switch per task.
        When nothing is ready (or the claim fails), the main thread, which
        polls and backs off, takes over. Rows claimed ahead go to the pool's
        queue, and while any wait there this thread takes those first.
        """
        worker = self.worker
        waiting = worker.in_flight.waiting()
        rows: list[DBTaskResult] = []
        if not waiting:
            try:
                rows = worker.claim(limit=1)
            except DatabaseError:
                logger.warning(
                    "Worker %s: claim failed; the main loop retries", worker.id, exc_info=True
                )
                discard_if_broken(worker.db)
        with worker.in_flight.lock:
            worker.in_flight.chaining -= 1
        self.hand_over(rows[1:])
        if not rows:
            if not waiting:  # else this thread takes a waiting row next
                worker.wake.set()
            return None
        return rows[0]

    def hand_over(self, rows: list[DBTaskResult]) -> None:
        """Queue ``rows`` for the task threads: the next free thread takes each."""
        worker = self.worker
        assert worker.pool is not None  # Worker.run() starts it before anything is claimed
        for row in rows:
            worker.in_flight.queue(row)
            worker.pool.submit(row)

    def settled(self, row: DBTaskResult) -> None:
        """A kept outcome is written (``batching.py``): forget the row."""
        worker = self.worker
        worker.outage.recorded(row)
        worker.in_flight.finish(row, ran=True)
        worker.wake.set()  # a stop, or --oneshot, may wait for the last of them

    def hand_back_overdue(self, seconds: float) -> None:
        """Hand back the rows claimed ahead that waited over ``seconds`` for a thread.

        They wait behind a task slower than those before it; another worker,
        or this one later, takes them.
        """
        in_flight = self.worker.in_flight
        for row in in_flight.overdue(seconds):
            self.hand_back(row, f"claimed ahead, it waited over {seconds:g}s for a thread")
            in_flight.finish(row, ran=False)

    def hand_back(self, row: DBTaskResult, why: str) -> None:
        """Give back a claimed row that never started: READY again, its attempt not counted."""
        worker = self.worker
        try:
            handed_back = unclaim(row, worker_id=worker.id)
        except DatabaseError:
            # It stays RUNNING for us: lost-worker recovery closes it once we stop.
            logger.warning("Task id=%s: could not hand it back", row.pk, exc_info=True)
            return
        if handed_back:
            logger.info("Task id=%s path=%s handed back unstarted: %s", row.pk, row.task_path, why)
