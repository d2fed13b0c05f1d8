"""Tasks dbtasks ships: run them from a schedule (see the README's "Recurring tasks").

For example, purge results every hour with a recurring task rather than
inside every worker::

    "OPTIONS": {
        "purge": {"finished": "10 days", "unfinished": "20 days", "interval": None},
        "schedules": {
            "purge-results": {"task": "dbtasks.tasks.purge_expired_results", "cron": "17 * * * *"},
        },
    }
"""

from __future__ import annotations

from dbtasks.backend import DatabaseBackend
from dbtasks.clock import database_time
from dbtasks.compat import task
from dbtasks.compat import task_backends
from dbtasks.purge import purge_expired
from dbtasks.sql.purge import Kind


@task
def purge_expired_results(backend: str = "default") -> dict[Kind, int]:
    """Delete results older than ``backend``'s purge policy; return how many of each."""
    task_backend = task_backends[backend]
    if not isinstance(task_backend, DatabaseBackend):
        raise TypeError(f"Backend {backend!r} is not a dbtasks DatabaseBackend.")
    return dict(purge_expired(task_backend, now=database_time(task_backend.db_alias)))
