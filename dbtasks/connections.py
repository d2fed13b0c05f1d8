"""Keep a long-running process's database connection, unless it is broken.

Django's ``close_old_connections()`` closes every connection whose
``CONN_MAX_AGE`` has passed: with the default of 0 a worker would reconnect
before every task (about 3x slower on Postgres). A worker keeps its
connection and drops it only after an error left it unusable; the next query
reconnects.
"""

from __future__ import annotations

import logging

from django.db import connections

logger = logging.getLogger(__name__)


def discard_if_broken(alias: str) -> None:
    """Close this thread's connection to ``alias`` if an error broke it."""
    connection = connections[alias]
    if connection.connection is None or connection.in_atomic_block:
        return
    if not connection.errors_occurred:
        return
    if not connection.is_usable():
        logger.info("Database connection %r is unusable; reconnecting on next use", alias)
        connection.close()
    connection.errors_occurred = False
