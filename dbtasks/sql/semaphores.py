"""Concurrency limits in the database: one ``DBSemaphore`` row per key.

A row with a ``concurrency_key`` holds one of its key's slots while it is
READY (or SCHEDULED) or RUNNING; BLOCKED rows wait for one. Every function
here runs inside the caller's transaction and first locks the key's
semaphore row (an UPDATE: a row lock on Postgres, the write lock SQLite's
IMMEDIATE transactions take anyway), so the enqueues and give-backs of one
key take turns and ``in_use`` can never pass ``limit``.

Giving back recounts the holders instead of decrementing: the count is
exact whatever happened before (a crashed worker, a cancel), so the same
function serves the close of an attempt, a cancel and the workers' periodic
repair.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db.models import F
from django.db.models import Q

from dbtasks.models import BLOCKED
from dbtasks.models import READY
from dbtasks.models import RUNNING
from dbtasks.models import SCHEDULED
from dbtasks.models import DBSemaphore
from dbtasks.models import DBTaskResult

# The states that hold a slot of the row's key.
HOLDING = (READY, SCHEDULED, RUNNING)
# BLOCKED rows that wait for a slot only: not a workflow member still
# waiting on other members (its release asks for a slot when it is time).
WAITS_FOR_A_SLOT = Q(status=BLOCKED) & (Q(in_workflow=False) | Q(workflow_member__waiting_for=0))


def take_slot(db: str, backend_name: str, key: str, limit: int) -> bool:
    """Take a slot of ``key`` if one is free; return whether it was taken."""
    DBSemaphore.objects.using(db).bulk_create(
        [DBSemaphore(backend_name=backend_name, key=key, limit=limit)], ignore_conflicts=True
    )
    semaphore = DBSemaphore.objects.using(db).filter(backend_name=backend_name, key=key)
    # Lock first (and keep the limit the OPTIONS say now), then take a slot if free.
    semaphore.update(limit=limit)
    return bool(semaphore.filter(in_use__lt=limit).update(in_use=F("in_use") + 1))


def lock(db: str, backend_name: str, keys: Iterable[str]) -> None:
    """Lock the semaphores of ``keys``, in a fixed order so two lockers never deadlock."""
    for key in sorted(set(keys)):
        DBSemaphore.objects.using(db).filter(backend_name=backend_name, key=key).update(
            limit=F("limit")
        )


def give_back(db: str, backend_name: str, keys: Iterable[str], now: datetime) -> int:
    """Recount the holders of ``keys`` and pass free slots to the oldest BLOCKED rows.

    Only rows that are due get a slot (a retry still in its backoff waits
    BLOCKED without one), in the order workers claim: priority, then time.
    A row that gets one is available from now: it joins the claim's order
    behind the rows that became READY while it waited, as if enqueued now
    (else a key's backlog, older than everything enqueued since, would be
    claimed ahead of every other key's tasks each time it got a slot).
    Return how many rows were made READY.
    """
    promoted = 0
    for key in sorted(set(keys)):
        semaphore = DBSemaphore.objects.using(db).filter(backend_name=backend_name, key=key)
        if not semaphore.update(limit=F("limit")):  # locks it; no row: nothing limited
            continue
        limit = semaphore.values_list("limit", flat=True).get()
        rows = DBTaskResult.objects.using(db).filter(backend_name=backend_name, concurrency_key=key)
        holders = rows.filter(status__in=HOLDING).count()
        ready = 0
        if holders < limit:
            waiting = rows.filter(WAITS_FOR_A_SLOT, available_after__lte=now)
            ids = list(
                waiting.order_by("-priority", "available_after", "id").values_list("pk", flat=True)[
                    : limit - holders
                ]
            )
            ready = rows.filter(pk__in=ids, status=BLOCKED).update(
                status=READY, available_after=now
            )
        semaphore.update(in_use=holders + ready)
        promoted += ready
    return promoted


def keys_to_repair(db: str, backend_name: str) -> set[str]:
    """Keys whose count may be off: slots in use, or rows waiting for one."""
    in_use = DBSemaphore.objects.using(db).filter(backend_name=backend_name, in_use__gt=0)
    blocked = DBTaskResult.objects.using(db).filter(WAITS_FOR_A_SLOT, backend_name=backend_name)
    return set(in_use.values_list("key", flat=True)) | set(
        blocked.exclude(concurrency_key="").values_list("concurrency_key", flat=True).distinct()
    )
