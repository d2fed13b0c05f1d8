"""Each web process's LISTEN connection, which tells its memo what changed (``live_memo.py``).

One daemon thread per process, started by the first poll that can use
the memo (``active()``; gunicorn forks its workers, each starts its own),
on a connection of its own to the poll's database: it ``LISTEN``s on the
channel the triggers of migration 0010 notify, hands every notification
to the memo, and every ``LIVENESS`` seconds proves it is alive (and reads
the server's clock). On an error it tells the memo, which then answers
nothing from memory, and connects again with a backoff.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime
from typing import Any

import psycopg
from django.conf import settings
from django.db import connections

from dbtasks.clock import MAX_ROUND_TRIP
from dbtasks.sql.notify import connection_params
from messagecenter.live_memo import Memo

logger = logging.getLogger(__name__)

# The channel the triggers notify (migration 0010).
CHANNEL = "messagecenter_live"
# Its connection's name in pg_stat_activity.
APPLICATION_NAME = "messagecenter-live"
# A cut network fails the connection within seconds, not TCP's minutes
# (libpq's keepalives and user timeout; Unix sockets ignore them).
CUT_OFF = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,  # ms
}
# How often the listener proves it is alive, in seconds (well within the
# memo's SILENCE).
LIVENESS = 2.0


class Listener:
    """A thread that LISTENs on ``CHANNEL`` for ``memo``, reconnecting on errors."""

    def __init__(self, memo: Memo, params: dict[str, Any]) -> None:
        self.memo = memo
        self.params = params
        self.stopping = threading.Event()
        self.session: int | None = None  # the server process that LISTENs
        self.thread = threading.Thread(target=self._run, name="messagecenter-live", daemon=True)

    def start(self) -> Listener:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()

    def _run(self) -> None:
        delay = 0.5
        while not self.stopping.is_set():
            try:
                with psycopg.connect(**self.params, autocommit=True) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    session = self.session = _server_process(connection)
                    self.memo.listening()
                    delay = 0.5
                    while not self.stopping.is_set():
                        self.memo.alive(_offset(connection, session))
                        for note in connection.notifies(timeout=LIVENESS):
                            self.memo.heard(note.payload)
            except NotASession as error:
                logger.warning("%s Every live poll queries the database.", error)
                return
            except psycopg.Error as error:
                self.memo.lost()
                logger.warning(
                    "The live page's LISTEN connection failed (%s); polls query the "
                    "database until it is back (retrying in %.1fs).",
                    error,
                    delay,
                )
                self.stopping.wait(delay)
                delay = min(delay * 2, 30.0)
            finally:
                self.memo.lost()


class NotASession(Exception):
    """The listener's statements ran in more than one server process: a transaction pooler."""


def _server_process(connection: psycopg.Connection[Any]) -> int:
    row = connection.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


def _offset(connection: psycopg.Connection[Any], session: int) -> float | None:
    """The server's clock minus ours, in seconds (None if the reading took too long).

    Raises NotASession if the server process is not the one that LISTENs: a
    transaction pooler (PgBouncer) not announced by DATABASE_POOLED, which
    would hand the notifications to whichever client holds that process.
    """
    before = time.time()
    row = connection.execute("SELECT clock_timestamp(), pg_backend_pid()").fetchone()
    after = time.time()
    assert row is not None
    if row[1] != session:
        raise NotASession(
            "The live page's LISTEN connection is not a session of its own: behind a "
            "transaction pooler? Set DATABASE_POOLED=1."
        )
    if after - before > MAX_ROUND_TRIP:  # off by up to half of it: too far (dbtasks/clock.py)
        return None
    server_now: datetime = row[0]
    return server_now.timestamp() - (before + after) / 2


# One memo and listener per process (gunicorn forks its workers: each starts its own).
_started: dict[str, tuple[int, Memo, Listener]] = {}
_starting = threading.Lock()


def active(using: str) -> Memo | None:
    """This process's memo for the database ``using``, its listener started on first use.

    None where every poll must query: not Postgres (no NOTIFY), inside a
    transaction (its own NOTIFYs wait for its commit), behind a pooler
    (``DISABLE_SERVER_SIDE_CURSORS``, which DATABASE_POOLED sets: LISTEN
    needs a session of its own), or with LIVE_MEMO off.
    """
    connection = connections[using]
    if (
        connection.vendor != "postgresql"
        or connection.in_atomic_block
        or connection.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS")
        or not getattr(settings, "LIVE_MEMO", True)
    ):
        return None
    started = _started.get(using)
    if started is None or started[0] != os.getpid():
        with _starting:
            started = _started.get(using)
            if started is None or started[0] != os.getpid():
                memo = Memo()
                params = CUT_OFF | connection_params(using) | {"application_name": APPLICATION_NAME}
                listener = Listener(memo, params).start()
                started = _started[using] = (os.getpid(), memo, listener)
    return started[1]


def stop(using: str) -> None:
    """Stop this process's listener for ``using`` (tests: before their database is dropped)."""
    started = _started.pop(using, None)
    if started is not None and started[0] == os.getpid():
        started[2].stop()
