"""Step 8 of the tour: a worker's ``DBWorker`` row, written at start, refreshed, removed at exit.

Lost-worker recovery (``recovery.py``) trusts a worker whose heartbeat is
younger than ``heartbeat_timeout``. Each beat also measures this host's
offset to the database server's clock (``dbtasks/clock.py``), so heartbeats
and every other time the worker writes are in the server's time. The
heartbeat runs in its own thread, so a long task never makes its worker
look dead; and from a child process too (``pulse.py``), so neither does a
task that holds the GIL.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from collections.abc import Sequence
from datetime import datetime
from datetime import timedelta

from django.db import DatabaseError
from django.db import connections

from dbtasks.models import DBWorker
from dbtasks.worker.connections import discard_if_broken

logger = logging.getLogger(__name__)


class Heartbeat:
    """Registers one worker, proves it alive every ``interval``, and unregisters it."""

    def __init__(
        self,
        *,
        db: str,
        worker_id: str,
        backend_name: str,
        queues: Sequence[str],
        threads: int,
        interval: timedelta,
        clock: Callable[[], datetime],
        after_beat: Callable[[], None] = lambda: None,
        sync_clock: Callable[[], object] = lambda: None,
    ) -> None:
        self.db = db
        self.worker_id = worker_id
        self.backend_name = backend_name
        self.queues = list(queues)
        self.threads = threads
        self.interval = interval
        self.clock = clock
        # Run after each beat, in the heartbeat thread: the worker reads its
        # running tasks' cancel requests there.
        self.after_beat = after_beat
        self.sync_clock = sync_clock  # DatabaseClock.sync: measured at start and every beat

    def register(self) -> None:
        self.sync_clock()
        now = self.clock()
        DBWorker.objects.using(self.db).create(
            worker_id=self.worker_id,
            backend_name=self.backend_name,
            hostname=socket.gethostname()[:255],
            pid=os.getpid(),
            queues=self.queues,
            threads=self.threads,
            started_at=now,
            heartbeat_at=now,
        )

    def unregister(self) -> None:
        try:
            DBWorker.objects.using(self.db).filter(worker_id=self.worker_id).delete()
        except DatabaseError:
            logger.warning(
                "Worker %s could not unregister; it will expire", self.worker_id, exc_info=True
            )

    def beat(self) -> None:
        """Prove this worker is alive (and register again if it was taken for dead)."""
        self.sync_clock()
        row = DBWorker.objects.using(self.db).filter(worker_id=self.worker_id)
        if not row.update(heartbeat_at=self.clock()):
            logger.warning("Worker %s was presumed lost; registering again", self.worker_id)
            self.register()

    def start(self, *, stop: threading.Event) -> threading.Thread:
        """Beat every ``interval`` in a thread until ``stop`` is set; a failed beat is retried."""

        def beat_until_stopped() -> None:
            try:
                while not stop.wait(self.interval.total_seconds()):
                    try:
                        self.beat()
                        self.after_beat()
                    except DatabaseError:
                        logger.warning("Worker %s heartbeat failed", self.worker_id, exc_info=True)
                        discard_if_broken(self.db)
            finally:
                connections.close_all()

        thread = threading.Thread(target=beat_until_stopped, name="dbtasks-heartbeat", daemon=True)
        thread.start()
        return thread
