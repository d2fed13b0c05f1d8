"""The worker's chores between claims: lost workers, lost claims, schedules, purge.

The main thread calls ``Maintenance.run()`` before every claim; each chore
has its own pace, so most calls do nothing.

- Every heartbeat interval: close the attempts of workers whose heartbeat
  stopped (``recovery.py``), and hand back rows claimed for this worker
  that it never received.
- Twice a second: enqueue due ticks of recurring schedules (``schedules.py``).
- Every ``purge.interval``: delete old results (``dbtasks/purge.py``).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from dbtasks.models import RUNNING
from dbtasks.models import DBTaskResult
from dbtasks.purge import purge_expired
from dbtasks.worker.recovery import recover_lost_tasks
from dbtasks.worker.schedules import enqueue_due

if TYPE_CHECKING:
    from dbtasks.worker.loop import Worker

logger = logging.getLogger(__name__)

# How often a worker looks for due ticks of recurring schedules.
SCHEDULE_CHECK_INTERVAL = 0.5  # seconds


class Maintenance:
    """When each chore is due next, and the chores themselves."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._next_recovery = 0.0
        self._next_purge = 0.0
        self._next_schedule = 0.0

    def run(self) -> None:
        """Do the chores that are due."""
        worker = self.worker
        config = worker.config
        now = time.monotonic()
        if now >= self._next_recovery:
            self._next_recovery = now + config.heartbeat_interval.total_seconds()
            recover_lost_tasks(
                db=worker.db, backend_name=worker.backend.alias, config=config, now=worker.clock()
            )
            self.hand_back_lost_claims()
        if config.schedules and now >= self._next_schedule:
            # Twice a second, so a schedule ticking every second misses none.
            self._next_schedule = now + SCHEDULE_CHECK_INTERVAL
            enqueue_due(worker.backend, now=worker.clock())
        if config.purge.interval is not None and now >= self._next_purge:
            self._next_purge = now + config.purge.interval.total_seconds()
            self.purge()

    def hand_back_lost_claims(self) -> None:
        """Hand back rows claimed for us that we never received.

        A claim commits on the server; if the connection then fails before
        its reply arrives, the worker sees an error and the rows stay RUNNING
        under our live heartbeat, where lost-worker recovery never looks.
        A claim registers its rows in ``in_flight`` under ``claim_lock``,
        so a row RUNNING for us and not in flight is one of those.
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
            worker.runner.hand_back(row, "its claim's reply never reached the worker")

    def purge(self) -> None:
        """Delete results older than the purge policy allows."""
        deleted = purge_expired(self.worker.backend, now=self.worker.clock())
        if total := sum(deleted.values()):
            logger.info("Worker %s purged %d old task results", self.worker.id, total)
