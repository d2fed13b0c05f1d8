"""dbtasks' own transactions: short, ended by the server if their client goes quiet,
and on SQLite taken in turn by a worker's threads (``one_writer()``).

A worker cut off from the database (or frozen) between two statements of a
transaction leaves it open on the server, holding its row locks until the
server finds the connection dead: over two hours with default TCP
keepalives. Every worker that recovers or repairs those rows, or enqueues
the same schedule tick, would wait as long. dbtasks' own transactions last
milliseconds, so each asks the server (``SET LOCAL
idle_in_transaction_session_timeout``) to end it once its client has been
quiet inside it for ``heartbeat_timeout``: by then others take that worker
for lost anyway, and the rollback leaves its rows as they were for them.

Postgres only: SQLite's clients share one machine, with no network between.
Task code's own transactions are left alone.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import connections
from django.db import transaction

from dbtasks.compat import task_backends


@contextmanager
def short_transaction(db: str, *, idle_limit: timedelta | None) -> Iterator[None]:
    """``transaction.atomic(using=db)`` that the server ends after ``idle_limit`` of silence."""
    with transaction.atomic(using=db):
        connection = connections[db]
        if idle_limit is not None and connection.vendor == "postgresql":
            milliseconds = max(1, round(idle_limit.total_seconds() * 1000))
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT set_config('idle_in_transaction_session_timeout', %s, true)",
                    [str(milliseconds)],
                )
        yield


def heartbeat_timeout_of(backend_name: str) -> timedelta | None:
    """The heartbeat timeout of the dbtasks backend ``backend_name`` (None: not one)."""
    from dbtasks.backend import DatabaseBackend

    backend = task_backends[backend_name] if backend_name in settings.TASKS else None
    return backend.config.heartbeat_timeout if isinstance(backend, DatabaseBackend) else None


# One lock per SQLite database, shared by the threads of this process.
_SQLITE_WRITERS: dict[str, threading.RLock] = {}
_SQLITE_WRITERS_LOCK = threading.Lock()


@contextmanager
def one_writer(db: str) -> Iterator[None]:
    """On SQLite, let one thread of this process at a time write dbtasks' rows.

    SQLite writes one transaction at a time. A second writer waits in its
    busy handler, which sleeps (1, 2, 5, 10 ms and more) however soon the
    first is done: a worker's task threads, each closing and claiming in
    well under a millisecond, spent most of their time asleep there (two
    threads drained no-op tasks at less than half the rate of one). Here
    they queue in Python instead and take turns at once. Other processes
    still meet in the busy handler.

    Taken before the transaction begins. Inside a transaction it is not
    taken (lost-worker recovery closes attempts in one): that thread may
    hold the database's lock already, and waiting here while the holder of
    this lock waits for the database would stall both until the busy
    timeout. Postgres: nothing to do (row locks).
    """
    lock = _writer_lock(db)
    if lock is None:
        yield
        return
    with lock:
        yield


def _writer_lock(db: str) -> threading.RLock | None:
    """The lock ``one_writer(db)`` takes; None where it takes none (Postgres, a transaction)."""
    connection = connections[db]
    if connection.vendor != "sqlite" or connection.in_atomic_block:
        return None
    with _SQLITE_WRITERS_LOCK:
        return _SQLITE_WRITERS.setdefault(db, threading.RLock())
