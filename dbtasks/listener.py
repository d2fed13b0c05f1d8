"""Wake idle workers the moment a task is enqueued (Postgres only).

``DatabaseBackend.enqueue()`` sends ``NOTIFY dbtasks`` in the enqueueing
transaction; Postgres delivers it when that transaction commits. Each worker
keeps one extra connection LISTENing and sets its wake-up event. Polling
stays as the fallback, so a lost notification only costs one poll interval.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import psycopg
from django.db import connections

from dbtasks.backend import NOTIFY_CHANNEL

logger = logging.getLogger(__name__)


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
                connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
                delay = 0.5
                while not stop.is_set():
                    for _ in connection.notifies(timeout=1.0, stop_after=1):
                        wake.set()
        except psycopg.Error as error:
            logger.warning("LISTEN connection failed (%s); retrying in %.1fs", error, delay)
            stop.wait(delay)
            delay = min(delay * 2, 30)


def start_listener(db: str, *, wake: threading.Event, stop: threading.Event) -> threading.Thread:
    thread = threading.Thread(
        target=listen,
        args=(db,),
        kwargs={"wake": wake, "stop": stop},
        name="dbtasks-listen",
        daemon=True,
    )
    thread.start()
    return thread
