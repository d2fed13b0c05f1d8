"""The worker's chores between claims: lost workers, lost claims, schedules, purge.

The main thread calls ``Maintenance.run()`` before every claim; each chore
has its own pace, so most calls do nothing.

- Every heartbeat interval: close the attempts of workers whose heartbeat
  stopped (``recovery.py``), hand back rows claimed for this worker
  that it never received, read which queues are paused, and look for
  tasks to run alone (``alone.py``).
- Twice a second: make due SCHEDULED rows READY (``dbtasks/sql/stage.py``),
  find the rate-limited keys with tasks waiting (``throttle.py``), and
  enqueue due ticks of recurring schedules (``schedules.py``).
- Every few seconds: count the minutes that ended (``summaries.py``), once,
  for the ops dashboard and the metrics.
- Every ``purge.interval``: delete old results (``dbtasks/purge.py``).
- Every call: ask attempts past their ``timeout`` to stop, and close those
  that did not (``enforce_timeouts``).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from django.db import DatabaseError

from dbtasks.models import RUNNING
from dbtasks.models import DBTaskResult
from dbtasks.purge import purge_expired
from dbtasks.queues import paused_queues
from dbtasks.sql import semaphores
from dbtasks.sql.stage import stage_due
from dbtasks.sql.transactions import short_transaction
from dbtasks.worker.outcomes import record_attempt
from dbtasks.worker.recovery import recover_lost_tasks
from dbtasks.worker.schedules import enqueue_due
from dbtasks.worker.summaries import summarise_due_minutes

if TYPE_CHECKING:
    from dbtasks.worker.loop import Worker

logger = logging.getLogger(__name__)

# How often a worker looks for due ticks of recurring schedules.
SCHEDULE_CHECK_INTERVAL = 0.5  # seconds
# How often a worker looks for ended minutes nobody has summarised yet.
SUMMARY_CHECK_INTERVAL = 5.0  # seconds
# How often a worker makes due SCHEDULED rows READY: a task due later, or a
# retry, starts at most about this late (plus the poll interval on SQLite).
STAGE_INTERVAL = 0.5  # seconds


class Maintenance:
    """When each chore is due next, and the chores themselves."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._next_recovery = 0.0
        self._next_purge = 0.0
        self._next_schedule = 0.0
        self._next_summary = 0.0
        self._next_stage = 0.0

    def run(self) -> None:
        """Do the chores that are due."""
        worker = self.worker
        config = worker.config
        now = time.monotonic()
        self.enforce_timeouts(now)
        if now >= self._next_recovery:
            self._next_recovery = now + config.heartbeat_interval.total_seconds()
            recover_lost_tasks(
                db=worker.db,
                backend_name=worker.backend.alias,
                config=config,
                now=worker.clock(),
                own_worker_id=worker.id,
            )
            self.hand_back_lost_claims()
            self.refresh_paused()
            worker.alone.refresh(worker.clock())
            self.repair_concurrency_slots()
        if now >= self._next_stage:
            self._next_stage = now + STAGE_INTERVAL
            self.stage()
            worker.throttle.discover()
        if config.schedules and now >= self._next_schedule:
            # Twice a second, so a schedule ticking every second misses none.
            self._next_schedule = now + SCHEDULE_CHECK_INTERVAL
            enqueue_due(worker.backend, now=worker.clock())
        if now >= self._next_summary:
            self._next_summary = now + SUMMARY_CHECK_INTERVAL
            summarise_due_minutes(worker.backend, now=worker.clock())
        if config.purge.interval is not None and now >= self._next_purge:
            self._next_purge = now + config.purge.interval.total_seconds()
            self.purge()

    def hand_back_lost_claims(self) -> None:
        """Hand back rows claimed for us that we never received.

        A claim commits on the server; if the connection then fails before
        its reply arrives, the worker sees an error and the rows stay RUNNING
        under our live heartbeat, where lost-worker recovery never looks.
        A claim registers its rows in ``in_flight`` under ``claim_lock``,
        so a row RUNNING for us and not in flight is one of those, or one
        whose task thread could not connect (``outage.py``).
        """
        worker = self.worker
        with worker.claim_lock:  # no claim may commit between the snapshot and the query
            ours = worker.in_flight.row_ids()
            strays = list(
                DBTaskResult.objects.using(worker.db)
                .filter(status=RUNNING, worker_id=worker.id)
                .exclude(pk__in=ours)
            )
        for row in strays:
            worker.runner.hand_back(row, "its claim's reply, or a connection, never came")

    def repair_concurrency_slots(self) -> None:
        """Recount the slots of concurrency limits, and give free ones to BLOCKED rows.

        Every give-back happens with the change that frees the slot; this
        catches what no give-back saw: a task lost with its worker and failed
        for good, a limited row that became due while slots were free.
        """
        worker = self.worker
        alias = worker.backend.alias
        keys = semaphores.keys_to_repair(worker.db, alias)
        if not keys:
            return
        with short_transaction(worker.db, idle_limit=worker.config.heartbeat_timeout):
            promoted = semaphores.give_back(worker.db, alias, keys, worker.clock())
        if promoted:
            logger.info("Worker %s gave %d free concurrency slots", worker.id, promoted)

    def refresh_paused(self) -> None:
        """Read which of our queues are paused: claims leave them out until resumed."""
        worker = self.worker
        paused = paused_queues(worker.backend.alias, db=worker.db) & set(worker.queues)
        if paused != worker.paused:
            logger.info(
                "Worker %s: paused queues now %s", worker.id, ", ".join(sorted(paused)) or "none"
            )
            worker.paused = frozenset(paused)

    def enforce_timeouts(self, now: float) -> None:
        """Ask attempts past their timeout to stop; close the ones still running after SETTLE.

        Python cannot stop a thread, so an attempt that did not stop is
        closed here (``TaskTimeout``, the retry policy applies) and its
        thread is retired: a new one takes its place. When as many threads
        as ``--max-hung-threads`` are stuck, the worker stops claiming,
        drains and exits non-zero (``EXIT_HUNG``) so the process manager
        starts a fresh process.
        """
        worker = self.worker
        to_stop, to_close = worker.interrupts.due(now)
        for running in to_stop:
            logger.warning(
                "Task id=%s path=%s: past its timeout of %s; asking it to stop",
                running.row.pk,
                running.row.task_path,
                running.timeout,
            )
        for running in to_close:
            row = running.row
            try:
                attempt = record_attempt(
                    row,
                    worker_id=worker.id,
                    policy=worker.config.policy(row.queue_name, row.task_path),
                    now=worker.clock(),
                    error=running.control.reason,
                )
            except DatabaseError:
                logger.warning("Task id=%s: could not close it yet", row.pk, exc_info=True)
                continue
            worker.interrupts.end(row)
            worker.in_flight.finish(row, ran=attempt is not None)
            assert worker.pool is not None
            worker.pool.retire(running.control.thread)
            hung = worker.pool.hung()
            logger.error(
                "Task id=%s path=%s did not stop; attempt %d closed (%s), task now %s; "
                "its thread is replaced (%d stuck)",
                row.pk,
                row.task_path,
                row.attempt_count,
                type(running.control.reason).__name__,
                row.status,
                hung,
            )
            if hung >= worker.max_hung_threads and not worker.hung_exit:
                logger.error(
                    "Worker %s: %d threads stuck in tasks (--max-hung-threads %d); "
                    "stopping so a fresh process takes over",
                    worker.id,
                    hung,
                    worker.max_hung_threads,
                )
                worker.hung_exit = True
                worker.request_stop()

    def stage(self) -> None:
        """Make due SCHEDULED rows READY; on Postgres, wake the workers of their queues."""
        worker = self.worker
        staged = stage_due(
            db=worker.db, now=worker.clock(), notify=worker.backend.uses_listen_notify()
        )
        if staged:
            logger.debug("Worker %s staged due tasks: %s", worker.id, staged)

    def purge(self) -> None:
        """Delete results older than the purge policy allows."""
        deleted = purge_expired(self.worker.backend, now=self.worker.clock())
        if total := sum(deleted.values()):
            logger.info("Worker %s purged %d old task results", self.worker.id, total)
