"""Outcomes in batches: one transaction closes the attempts of several quick tasks.

A close is a transaction of its own (on Postgres one statement, which
commits on its own), and its commit costs more than its statements: on
SQLite the BEGIN and COMMIT, on Postgres the wait for the WAL flush. Under
a backlog of quick tasks, closing took half of a task thread's time. So
while more rows claimed ahead wait for the threads (``ahead.py``), a task
thread that finished a task keeps its outcome here and goes on to the next;
the thread whose task leaves none waiting, or fills the batch (``MOST``),
writes them all in one transaction (``dbtasks.sql.close.close_attempts``).
The main thread writes any outcome kept longer than ``ahead.BUDGET``
(``Worker.tend``), so a slower task that comes next does not hold the
others' back. Each close is guarded as ever: an attempt someone else
closed meanwhile is not overwritten, and its outcome is discarded with the
same warning.

Only plain closes wait here, not a workflow member's or a limited task's,
which do more in their transaction. Until its outcome is written a row
stays RUNNING and in flight, so what the worker promises holds: a stop
waits for it, and if the worker dies first the task runs again
(at-least-once, as ever).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING
from typing import Any

from django.db import DatabaseError

from dbtasks.models import DBTaskAttempt
from dbtasks.models import DBTaskResult
from dbtasks.sql.close import close_attempts
from dbtasks.worker.ahead import MOST
from dbtasks.worker.connections import discard_if_broken
from dbtasks.worker.outcomes import apply_changes
from dbtasks.worker.outcomes import outcome_of
from dbtasks.worker.outcomes import record_until_done
from dbtasks.worker.storable import is_permanent

if TYPE_CHECKING:
    from dbtasks.worker.loop import Worker

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Kept:
    """An outcome not written yet: ``record_attempt()``'s arguments (``outcomes.Outcome``),
    and what follows the write.

    ``then(attempt)`` runs once it is written (``None``: someone else had
    closed the attempt).
    """

    row: DBTaskResult
    record: dict[str, Any]
    then: Callable[[DBTaskAttempt | None], None]
    since: float = field(default_factory=time.monotonic)


class OutcomeBatch:
    """The outcomes a worker's task threads have kept to write together."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._lock = threading.Lock()
        self._kept: list[Kept] = []
        # After a failed write: not before (time.monotonic()), and the next wait.
        self._retry_at = 0.0
        self._delay = 0.1

    def takes(self, row: DBTaskResult) -> bool:
        """Whether ``row``'s outcome goes through the batch: a plain close."""
        return not row.in_workflow and not row.concurrency_key

    def add(self, kept: Kept) -> bool:
        """Keep an outcome, and write the batch unless another row waits for a thread.

        False: nothing was kept before it and nothing waits, so a batch would
        be this one outcome: the caller writes it the ordinary way
        (``record_until_done``).
        """
        worker = self.worker
        goes_on = bool(worker.in_flight.waiting()) and not worker.stopping.is_set()
        with self._lock:
            if not goes_on and not self._kept:
                return False
            self._kept.append(kept)
            full = len(self._kept) >= MOST
        if full or not goes_on:
            self.write()
        return True

    def write(self, *, older_than: float | None = None) -> None:
        """Write the kept outcomes (with ``older_than``: only if one was kept that long)."""
        with self._lock:
            if not self._kept:
                return
            now = time.monotonic()
            if older_than is not None and (
                now - self._kept[0].since < older_than or now < self._retry_at
            ):
                return
            batch, self._kept = self._kept, []
        worker = self.worker
        closes = []
        for kept in batch:
            changes, attempt = outcome_of(kept.row, **kept.record)
            closes.append((kept.row, changes, attempt))
        try:
            closed = close_attempts(worker.db, closes, worker_id=worker.id)
        except DatabaseError as error:
            discard_if_broken(worker.db)
            if is_permanent(error):
                # One of them the database refuses for good: each on its own,
                # so that one is recorded as OutcomeNotStored (outcomes.py).
                for kept in batch:
                    alone = record_until_done(kept.row, abandon=worker.abandon, **kept.record)
                    self._settle(kept, alone)
                return
            with self._lock:
                self._kept[:0] = batch  # the main thread tries again (Worker.tend)
                wait = self._delay
                self._retry_at = time.monotonic() + wait
                self._delay = min(wait * 2, 10)
            logger.warning(
                "Worker %s: cannot record %d outcomes yet; retrying in %.1fs",
                worker.id,
                len(batch),
                wait,
                exc_info=True,
            )
            return
        with self._lock:
            self._retry_at, self._delay = 0.0, 0.1
        for kept, (row, changes, attempt), ours in zip(batch, closes, closed, strict=True):
            if ours:
                apply_changes(row, changes)
            self._settle(kept, attempt if ours else None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._kept)

    def _settle(self, kept: Kept, attempt: DBTaskAttempt | None) -> None:
        kept.then(attempt)
        self.worker.runner.settled(kept.row)
