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
import time
from collections.abc import Callable
from collections.abc import Sequence
from datetime import datetime
from datetime import timedelta

from django.db import DatabaseError
from django.db import connections
from django.db.models import DateTimeField
from django.db.models import F
from django.db.models import Value
from django.db.models.functions import Greatest

from dbtasks.models import DBWorker
from dbtasks.worker.connections import discard_if_broken
from dbtasks.worker.pulse import Pulse

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
        # Run after each beat, in the beating thread: the worker reads its
        # running tasks' cancel requests there.
        self.after_beat = after_beat
        self.sync_clock = sync_clock  # DatabaseClock.sync: measured at start and every beat
        self._next_beat = 0.0  # tend(): monotonic time of the next beat

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
        # Never back: a thread that read the clock and then waited for the GIL
        # (a task holding it) would undo the heartbeat process's newer beat.
        now = Value(self.clock(), output_field=DateTimeField())
        if not row.update(heartbeat_at=Greatest(F("heartbeat_at"), now)):
            logger.warning("Worker %s was presumed lost; registering again", self.worker_id)
            self.register()

    def beat_once(self) -> None:
        """Beat, then the work after it; a failure is logged and tried again next time."""
        try:
            self.beat()
            self.after_beat()
        except DatabaseError:
            logger.warning("Worker %s heartbeat failed", self.worker_id, exc_info=True)
            discard_if_broken(self.db)

    def tend(self) -> None:
        """``beat_once()`` if an interval has passed since the last (the caller's thread)."""
        now = time.monotonic()
        if now >= self._next_beat:
            self._next_beat = now + self.interval.total_seconds()
            self.beat_once()

    def start(self, *, stop: threading.Event) -> threading.Thread:
        """Beat every ``interval`` in a thread until ``stop`` is set; a failed beat is retried."""

        def beat_until_stopped() -> None:
            try:
                while not stop.wait(self.interval.total_seconds()):
                    self.beat_once()
            finally:
                connections.close_all()

        thread = threading.Thread(target=beat_until_stopped, name="dbtasks-heartbeat", daemon=True)
        thread.start()
        return thread


class Beating:
    """Who beats for a worker: its child process, or else a thread.

    With the child (``pulse.py``) beating on time, the rest of a beat's work
    (registering again, the clock offset, cancel requests, fencing), none of
    which must be on time, is done by the worker's main thread on its own
    connection (``tend()``), so no thread holds a connection for it.
    """

    def __init__(self, heartbeat: Heartbeat, pulse: Pulse | None) -> None:
        self.heartbeat = heartbeat
        self.pulse = pulse
        self.stopped = threading.Event()
        self.started = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.started = True
        if self.pulse is not None:
            self.pulse.start()
        else:
            self._thread = self.heartbeat.start(stop=self.stopped)

    def tend(self) -> None:
        """In the main thread, between claims."""
        if self.pulse is not None and self.started and not self.stopped.is_set():
            self.heartbeat.tend()
            if not self.pulse.alive() and not self.stopped.is_set():
                logger.warning(
                    "Worker %s: heartbeat process exited; starting another",
                    self.heartbeat.worker_id,
                )
                self.pulse.start()

    def stop(self) -> None:
        """No more beats: the worker's heartbeat ages from now on."""
        self.stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.pulse is not None:
            self.pulse.stop()
