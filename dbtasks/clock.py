"""One clock for every time decision: the database server's.

Workers on many hosts compare times they wrote with times others wrote: a
heartbeat with the lost-worker cutoff, ``available_after`` with the claim's
"now", a cron tick with the ticks already enqueued, a finish time with the
purge window. Each host's own clock would make a host whose clock runs
ahead take healthy workers for lost, run tasks before they are due, fire
cron ticks early and purge young rows; one that runs behind would run
nothing. So every time dbtasks writes or compares comes from one clock.

On Postgres that is the server's. A worker measures the offset between the
server's clock and its own when it starts and at every heartbeat
(``DatabaseClock.sync()``, one ``SELECT clock_timestamp()``), and its clock
reads local time plus that offset: no extra round trip per decision, and a
host clock that drifts or jumps is caught within one heartbeat interval.
``enqueue()`` writes ``enqueued_at`` and ``available_after`` with the
server's ``statement_timestamp()`` in its INSERT (``dbtasks/sql/notify.py``),
the admin's re-queue and cancel, ``cancel()``, the purge task and the
purge command read the server's time (``database_time()``), so a web
host's clock never delays a task either. The read side (``/ops/``, the
metrics, ``dbtasks_health``) reads it too, so a web host whose clock runs
ahead never reports live workers as gone.

SQLite has no server: its database is a file on one machine, and every
process that opens it reads that machine's clock. There the clock is the
local one (offset zero).
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC
from datetime import datetime
from datetime import timedelta

from django.db import connections
from django.utils import timezone

logger = logging.getLogger(__name__)

# An offset this large is worth a line in the log: the host's clock is off.
NOTABLE_OFFSET = timedelta(seconds=1)
# A reading may be off by half its round trip. One that took longer than
# this (a query that hung on a cut network and was answered after the heal,
# a stalled server) never replaces a closer one: an error of seconds would
# make the worker take live workers for lost, or run tasks early.
MAX_ROUND_TRIP = 0.5  # seconds
# A new offset may be a few milliseconds below the last one (each reading is
# off by up to half its round trip). Within this much the clock holds at the
# last time it told instead of going back, so a time this worker wrote (a
# released workflow step's "due since") is never in its own future. A host
# clock stepped back further than this is followed.
HOLD_WITHIN = timedelta(seconds=1)


class DatabaseClock:
    """Local time plus the measured offset to the database server's clock."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        # Written by sync() in one thread, read by all: a single reference
        # assignment, so readers see the old offset or the new one.
        self.offset = timedelta(0)
        # The round trip of the reading the offset comes from (None: not measured yet).
        self.round_trip: float | None = None
        self._told: datetime | None = None  # the last time this clock told
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            now = timezone.now() + self.offset
            told = self._told
            if told is not None and told - HOLD_WITHIN < now < told:
                return told
            self._told = now
            return now

    def sync(self) -> timedelta:
        """Measure the offset on this thread's connection; return it.

        The server's clock is read between two readings of ours; the
        midpoint is taken as the moment the server read it, so the error
        is at most half a round trip. A slow reading is kept only if the
        offset in use came from a slower one (see ``MAX_ROUND_TRIP``).
        """
        if connections[self.alias].vendor != "postgresql":
            return self.offset  # one machine, one clock
        started = time.monotonic()
        before = time.time()
        server_now = database_time(self.alias)
        after = time.time()
        round_trip = time.monotonic() - started
        if self.round_trip is not None and round_trip > max(MAX_ROUND_TRIP, self.round_trip):
            logger.info("Clock reading ignored: its round trip took %.3fs", round_trip)
            return self.offset
        self.round_trip = round_trip
        local_now = datetime.fromtimestamp((before + after) / 2, tz=UTC)
        offset = server_now - local_now
        if abs(offset - self.offset) >= NOTABLE_OFFSET:
            logger.warning(
                "This host's clock is %+.3fs off the database server's; "
                "dbtasks uses the server's time",
                -offset.total_seconds(),
            )
        self.offset = offset
        return offset


def database_time(alias: str) -> datetime:
    """The database server's time now (one query on Postgres), else local time."""
    connection = connections[alias]
    if connection.vendor != "postgresql":
        return timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        (server_now,) = cursor.fetchone()
    assert isinstance(server_now, datetime)  # timestamptz
    return server_now
