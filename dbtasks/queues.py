"""Pausing and resuming queues, cluster-wide: a paused queue's tasks are not claimed.

Pausing writes a row in ``DBPausedQueue``; every worker reads the paused
set with its housekeeping (every ``heartbeat_interval``) and leaves those
queues out of its claims. Tasks already running finish; new ones are still
accepted and wait, READY, until the queue is resumed::

    from dbtasks.queues import pause, resume

    pause("emails")   # True: it was running
    resume("emails")  # True: it was paused

Also ``manage.py dbtasks_queue pause|resume|list`` and the admin.
"""

from __future__ import annotations

from django.db import IntegrityError
from django.db import router
from django.db import transaction
from django.utils import timezone

from dbtasks.models import DBPausedQueue


def _db() -> str:
    return router.db_for_write(DBPausedQueue)


def pause(queue_name: str, *, backend_name: str = "default") -> bool:
    """Pause ``queue_name``; return False if it was paused already."""
    try:
        with transaction.atomic(using=_db()):
            DBPausedQueue.objects.using(_db()).create(
                backend_name=backend_name, queue_name=queue_name, paused_at=timezone.now()
            )
    except IntegrityError:
        return False
    return True


def resume(queue_name: str, *, backend_name: str = "default") -> bool:
    """Resume ``queue_name``; return False if it was not paused."""
    deleted, _ = (
        DBPausedQueue.objects.using(_db())
        .filter(backend_name=backend_name, queue_name=queue_name)
        .delete()
    )
    return bool(deleted)


def paused_queues(backend_name: str = "default", *, db: str | None = None) -> frozenset[str]:
    """The names of the backend's paused queues."""
    rows = DBPausedQueue.objects.using(db or _db()).filter(backend_name=backend_name)
    return frozenset(rows.values_list("queue_name", flat=True))
