"""Rows for the ops dashboard, metrics and health tests, written directly.

Tasks themselves are enqueued with the public API and run with ``run_worker``;
these helpers add what a real run cannot produce on demand: live or stale
workers and tasks caught RUNNING.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from datetime import timedelta
from typing import Any

from django.utils import timezone

from dbtasks.backend import DatabaseBackend
from dbtasks.compat import task_backends
from dbtasks.models import RUNNING
from dbtasks.models import DBTaskResult
from dbtasks.models import DBWorker

# The test settings' 2-second heartbeat timeout keeps worker tests fast; for
# rows these tests write by hand it would make a slow (shared, loaded) test
# machine take a worker added a moment ago for dead.
PATIENT_TIMEOUT = "1 minute"


def patient_heartbeats(settings: Any) -> None:
    """Give the default backend a heartbeat timeout of a minute (pytest-django ``settings``)."""
    default = settings.TASKS["default"]
    options = {**default["OPTIONS"], "heartbeat_timeout": PATIENT_TIMEOUT}
    settings.TASKS = {**settings.TASKS, "default": {**default, "OPTIONS": options}}


def add_worker(
    worker_id: str,
    *,
    queues: Sequence[str] = ("default", "low_priority", "other"),
    heartbeat_ago: timedelta = timedelta(0),
    threads: int = 2,
    backend_name: str = "default",
) -> DBWorker:
    now = timezone.now()
    return DBWorker.objects.create(
        worker_id=worker_id,
        backend_name=backend_name,
        hostname="host-" + worker_id,
        pid=4242,
        queues=list(queues),
        threads=threads,
        started_at=now - timedelta(hours=1),
        heartbeat_at=now - heartbeat_ago,
    )


def mark_running(result_id: str, *, worker_id: str, since: datetime) -> None:
    """Make a READY row look claimed by ``worker_id`` at ``since``, as claim() would."""
    DBTaskResult.objects.filter(pk=result_id).update(
        status=RUNNING,
        worker_id=worker_id,
        attempt_count=1,
        started_at=since,
        last_attempted_at=since,
    )


def count_minutes_so_far(alias: str = "default") -> int:
    """Summarise every minute up to the current one, as the workers will once it has ended.

    The dashboard and the metrics read the last hour from these summaries;
    a test would otherwise wait for the minute to end.
    """
    from dbtasks.worker.summaries import SETTLE
    from dbtasks.worker.summaries import summarise_due_minutes

    later = timezone.now() + timedelta(minutes=1) + SETTLE
    return summarise_due_minutes(database_backend(alias), now=later, limit=1000)


def database_backend(alias: str = "default") -> DatabaseBackend:
    backend = task_backends[alias]
    assert isinstance(backend, DatabaseBackend)
    return backend


def cancel(result_id: str) -> None:
    """Cancel a waiting task with the backend's own API."""
    assert database_backend().cancel(result_id)
