"""Step 3 of the tour: both ends of Postgres LISTEN/NOTIFY, so enqueues wake idle workers.

The sending end: ``NOTIFY`` is transactional, so Postgres delivers it when the
enqueueing transaction commits, and never if it rolls back; a woken worker
always finds the row. Sent as its own ``SELECT pg_notify(...)`` it would cost
each enqueue a second round trip; a data-modifying CTE carries both::

    WITH inserted AS (INSERT INTO ... VALUES (...) RETURNING id)
    SELECT id, pg_notify('dbtasks', <queue>) FROM inserted

The listening end: each worker keeps one extra connection LISTENing and sets
its wake-up event on every notification. Polling stays as the fallback, so a
lost notification only costs one poll interval.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import psycopg
from django.db import connections

from dbtasks.models import DBTaskResult
from dbtasks.sql.build import insert_parts
from dbtasks.sql.build import mark_saved

logger = logging.getLogger(__name__)

# The channel enqueue() notifies, and idle workers LISTEN on.
CHANNEL = "dbtasks"


def insert_and_notify(row: DBTaskResult, *, db: str, wake: bool = True) -> None:
    """Save the new ``row`` to ``db`` and (``wake``) notify its queue's workers.

    Sets the row's pk, and its ``enqueued_at`` (and ``available_after``
    unless it has a ``run_after``) to the server's clock: a web host whose
    clock is off must not delay the task (see ``dbtasks/clock.py``).
    """
    connection = connections[db]
    computed = {"enqueued_at": "statement_timestamp()"}
    if row.run_after is None:
        computed["available_after"] = "statement_timestamp()"
    columns, values, params = insert_parts(connection, row, computed=computed)
    returning = "RETURNING id, enqueued_at, available_after"
    if wake:
        sql = f"""
            WITH inserted AS (INSERT INTO {columns} VALUES ({values}) {returning})
            SELECT id, enqueued_at, available_after, pg_notify(%s, %s) FROM inserted
        """  # Only quoted names, placeholders and constant SQL are interpolated.
        params = [*params, CHANNEL, row.queue_name]
    else:
        sql = f"INSERT INTO {columns} VALUES ({values}) {returning}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        pk, row.enqueued_at, row.available_after = cursor.fetchone()[:3]
    mark_saved(row, pk=pk, db=db)


def notify(db: str, queue_name: str) -> None:
    """Notify ``queue_name``'s workers on its own; delivered when the transaction commits."""
    with connections[db].cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, queue_name])


def connection_params(db: str) -> dict[str, Any]:
    """The psycopg.connect() arguments Django would use for ``db``."""
    params = dict(connections[db].get_connection_params())
    for django_only in ("context", "cursor_factory", "prepare_threshold"):
        params.pop(django_only, None)
    return params


def listen(db: str, *, wake: threading.Event, stop: threading.Event) -> None:
    """Set ``wake`` on every notification until ``stop`` is set; reconnect on errors."""
    params = connection_params(db)
    delay = 0.5
    while not stop.is_set():
        try:
            with psycopg.connect(**params, autocommit=True) as connection:
                connection.execute(f"LISTEN {CHANNEL}")
                delay = 0.5
                while not stop.is_set():
                    for _ in connection.notifies(timeout=1.0, stop_after=1):
                        wake.set()
        except psycopg.Error as error:
            logger.warning("LISTEN connection failed (%s); retrying in %.1fs", error, delay)
            stop.wait(delay)
            delay = min(delay * 2, 30)


def start_listener(db: str, *, wake: threading.Event, stop: threading.Event) -> threading.Thread:
    """Run ``listen()`` in a daemon thread."""
    thread = threading.Thread(
        target=listen,
        args=(db,),
        kwargs={"wake": wake, "stop": stop},
        name="dbtasks-listen",
        daemon=True,
    )
    thread.start()
    return thread
