"""What a worker does while the database refuses it (too many clients, a restart).

A worker's task threads hold a connection only while they run a task
(``pool.py`` closes it when a thread goes idle), so a thread given a row may
find the server full. Three rules keep such a worker from stranding rows:

- Registering at start is retried with backoff until it succeeds or the
  worker is told to stop.
- A task thread that cannot connect within a heartbeat interval gives its
  row up unstarted: the main thread, on its own connection, hands it back
  (``Maintenance.hand_back_lost_claims``) so that a worker with a
  connection runs it, and holds its claims back for a while (doubling).
- A worker that cannot record an outcome for longer than
  ``heartbeat_timeout`` stops heartbeating and exits (``EXIT_STALLED``):
  its attempts would otherwise stay RUNNING under a live heartbeat for as
  long as the database refuses it; this way other workers recover them.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from django.db import DatabaseError
from django.db import connections

from dbtasks.models import DBTaskResult
from dbtasks.worker.connections import discard_if_broken
from dbtasks.worker.inflight import ClaimKey
from dbtasks.worker.inflight import claim_key

if TYPE_CHECKING:
    from dbtasks.worker.loop import Worker

logger = logging.getLogger(__name__)

# Claims held back after a task thread could not connect: doubling up to the cap.
HOLD_MIN = 0.5  # seconds
HOLD_MAX = 30.0


class Outage:
    """One worker's view of whether the database lets it work."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._lock = threading.Lock()
        self._recording: dict[ClaimKey, float] = {}  # code done at (monotonic)
        self._hold = 0.0
        self._held_until = 0.0
        self.stalled = False

    def register(self) -> None:
        """Register the worker, retrying with backoff while the database refuses it."""
        worker = self.worker
        delay = 0.1
        while True:
            try:
                worker.beating.heartbeat.register()
                return
            except DatabaseError as error:
                if worker.stop_requested:
                    raise
                logger.warning(
                    "Worker %s cannot register (%s); retrying in %.1fs", worker.id, error, delay
                )
                discard_if_broken(worker.db)
                worker.wait(delay)
                delay = min(delay * 2, HOLD_MAX)

    def connect(self, row: DBTaskResult) -> bool:
        """In a task thread: open its connection for ``row``; False to give the row up."""
        worker = self.worker
        deadline = time.monotonic() + max(worker.config.heartbeat_interval.total_seconds(), 1.0)
        delay = 0.05
        while True:
            try:
                # What a first query does: a health check if due, then connect.
                connections[worker.db].cursor().close()
            except DatabaseError as error:
                discard_if_broken(worker.db)
                if time.monotonic() + delay > deadline or worker.stopping.is_set():
                    self._hold_claims()
                    logger.warning(
                        "Task id=%s: no database connection for it (%s); handing it back, "
                        "claims held for %.1fs",
                        row.pk,
                        error,
                        self._hold,
                    )
                    return False
                worker.abandon.wait(delay)
                delay *= 2
            else:
                with self._lock:
                    self._hold = 0.0
                return True

    def _hold_claims(self) -> None:
        with self._lock:
            now = time.monotonic()
            if now < self._held_until:
                return  # threads that were given rows together count once
            self._hold = min(max(self._hold * 2, HOLD_MIN), HOLD_MAX)
            self._held_until = now + self._hold

    def claims_held(self) -> bool:
        """Whether a task thread failed to connect a moment ago: claim nothing yet."""
        with self._lock:
            return time.monotonic() < self._held_until

    def recording(self, row: DBTaskResult) -> None:
        """``row``'s code is done: its outcome is being written from now on."""
        with self._lock:
            self._recording[claim_key(row)] = time.monotonic()

    def recorded(self, row: DBTaskResult) -> None:
        with self._lock:
            self._recording.pop(claim_key(row), None)

    def check(self) -> None:
        """In the main thread: stop heartbeating and exit once an outcome waited too long."""
        worker = self.worker
        with self._lock:
            oldest = min(self._recording.values(), default=None)
        timeout = worker.config.heartbeat_timeout.total_seconds()
        if self.stalled or oldest is None or time.monotonic() - oldest <= timeout:
            return
        self.stalled = True
        logger.error(
            "Worker %s could not record an outcome for more than heartbeat_timeout (%gs): "
            "it stops heartbeating and exits, so that other workers recover its attempts",
            worker.id,
            timeout,
        )
        worker.beating.stop()
        worker.request_stop()
        worker.request_stop()  # the second call abandons what runs
