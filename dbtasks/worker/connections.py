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


def recheck_before_task(alias: str, *, health_check: bool = True) -> None:
    """Make this thread's connection to ``alias`` fit for one more task.

    What Django does before each request (``close_old_connections()``), minus
    closing healthy connections at ``CONN_MAX_AGE``: drop a connection an
    error broke or a task left outside autocommit, and have Django
    health-check it before its next query (when ``CONN_HEALTH_CHECKS`` is on).
    A connection the server dropped while this thread was idle then costs a
    reconnect, not the task's attempt (its own first query would fail).
    ``health_check=False`` skips the ping (the caller knows the connection
    was in use a moment ago).
    """
    connection = connections[alias]
    if connection.connection is None or connection.in_atomic_block:
        return
    if connection.get_autocommit() != connection.settings_dict["AUTOCOMMIT"]:
        connection.close()
        return
    discard_if_broken(alias)
    if health_check:
        # django-stubs leaves out this attribute, which Django sets in __init__.
        connection.health_check_done = False  # type: ignore[attr-defined]
