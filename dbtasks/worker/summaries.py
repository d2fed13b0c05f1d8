"""Count each ended minute once, for the dashboard and the metrics (``dbtasks.minutes``).

Every worker calls ``summarise_due_minutes()`` every few seconds. A minute is
due once it ended ``SETTLE`` ago (an attempt's ``stopped_at`` is taken just
before its row is written, so late rows are rare past that), and only the
minutes of the last ``HISTORY`` (an hour) can be due: after downtime the
history restarts an hour back instead of counting days nobody will look at.

Several workers may count the same minute at once: each builds the row, the
unique (backend, minute) constraint lets one INSERT win, and the others roll
back and move on, as schedule ticks do. Counting a minute is two aggregate
queries over that minute's attempts and cancellations (the ``stopped_at``
and ``cancelled_at`` indexes), about 17,000 attempts at a million an hour.

An attempt written more than ``SETTLE`` after its minute ended (a worker
whose clock runs that far behind, or an outcome held back by a database
outage) is not counted; the attempts themselves are the source of truth.
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import contextmanager
from datetime import datetime
from datetime import timedelta
from typing import TYPE_CHECKING
from typing import Any

from django.db import IntegrityError
from django.db import connections
from django.db import transaction
from django.db.models import Count
from django.db.models import DurationField
from django.db.models import F
from django.db.models import Q
from django.db.models import QuerySet
from django.db.models import Sum

from dbtasks.minutes import CANCELLATION_PATH
from dbtasks.minutes import DURATION_BUCKETS
from dbtasks.minutes import HISTORY
from dbtasks.minutes import MINUTE
from dbtasks.minutes import DBMinuteSummary
from dbtasks.minutes import QueueMinute
from dbtasks.minutes import minute_of
from dbtasks.models import FAILED
from dbtasks.models import SUCCESSFUL
from dbtasks.models import DBTaskAttempt
from dbtasks.models import DBTaskResult
from dbtasks.sql.transactions import short_transaction

if TYPE_CHECKING:
    from dbtasks.backend import DatabaseBackend

# How long after a minute ends it is counted.
SETTLE = timedelta(seconds=10)
# Summaries older than this are deleted (the read side shows the last HISTORY).
KEEP = 2 * HISTORY


@contextmanager
def joined_by_lookups(db: str) -> Iterator[None]:
    """On Postgres, join a minute's attempts to their tasks by primary-key lookups.

    Left to itself the planner hashes the whole task table for the join (a
    sequential scan of a million rows, measured at 600 ms) because it cannot
    know that a minute's tasks sit side by side; 17,000 lookups take a sixth
    of that. ``SET LOCAL`` ends with the transaction.
    """
    with transaction.atomic(using=db):
        connection = connections[db]
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL enable_hashjoin = off")
                cursor.execute("SET LOCAL enable_mergejoin = off")
        yield


def count_minute(backend: DatabaseBackend, minute: datetime) -> dict[str, QueueMinute]:
    """What each queue of ``backend`` did in the minute starting at ``minute`` (two queries)."""
    db, end = backend.db_alias, minute + MINUTE
    # A run stopped by a cancellation counts as the task's cancellation, not a failure.
    stopped = Q(outcome=FAILED, exception_class_path=CANCELLATION_PATH)
    ran = ~stopped
    gave_up = Q(
        ran,
        outcome=FAILED,
        result__status=FAILED,
        result__cancelled_at__isnull=True,
        result__cancel_requested_at__isnull=True,
        number=F("result__attempt_count"),
    )
    at_most = {
        f"le_{index}": Count(
            "pk", filter=ran & Q(stopped_at__lte=F("started_at") + timedelta(seconds=bound))
        )
        for index, bound in enumerate(DURATION_BUCKETS)
    }
    # Mapping, not the plugin's TypedDict: the bucket columns are named at run time.
    attempts: QuerySet[DBTaskAttempt, Mapping[str, Any]] = (
        DBTaskAttempt.objects.using(db)
        .filter(stopped_at__gte=minute, stopped_at__lt=end, result__backend_name=backend.alias)
        .values("result__queue_name")
        .annotate(
            successful=Count("pk", filter=Q(outcome=SUCCESSFUL)),
            failed=Count("pk", filter=ran & Q(outcome=FAILED)),
            gave_up=Count("pk", filter=gave_up),
            stopped=Count("pk", filter=stopped),
            duration_sum=Sum(
                F("stopped_at") - F("started_at"), filter=ran, output_field=DurationField()
            ),
            **at_most,
        )
        .order_by()
    )
    counted: dict[str, QueueMinute] = {}
    with joined_by_lookups(db):
        rows = list(attempts)
    for row in rows:
        counted[row["result__queue_name"]] = QueueMinute(
            successful=row["successful"],
            failed=row["failed"],
            gave_up=row["gave_up"],
            cancelled=row["stopped"],
            duration_sum=(row["duration_sum"] or timedelta(0)).total_seconds(),
            buckets=tuple(row[f"le_{index}"] for index in range(len(DURATION_BUCKETS))),
        )
    cancelled = (
        DBTaskResult.objects.using(db)
        .filter(cancelled_at__gte=minute, cancelled_at__lt=end, backend_name=backend.alias)
        .values("queue_name")
        .annotate(count=Count("pk"))
        .order_by()
    )
    for cancellations in cancelled:
        name = cancellations["queue_name"]
        counted[name] = counted.get(name, QueueMinute()) + QueueMinute(
            cancelled=cancellations["count"]
        )
    return counted


def due_minutes(backend: DatabaseBackend, *, now: datetime) -> list[datetime]:
    """The ended minutes of the last ``HISTORY`` not summarised yet, oldest first (one query)."""
    last_due = minute_of(now - SETTLE) - MINUTE
    first = minute_of(now) - HISTORY
    latest = (
        DBMinuteSummary.objects.using(backend.db_alias)
        .filter(backend_name=backend.alias, minute__gte=first)
        .order_by("-minute")
        .values_list("minute", flat=True)
        .first()
    )
    start = max(first, latest + MINUTE) if latest is not None else first
    minutes = []
    while start <= last_due:
        minutes.append(start)
        start += MINUTE
    return minutes


def summarise_due_minutes(backend: DatabaseBackend, *, now: datetime, limit: int = 10) -> int:
    """Count up to ``limit`` due minutes, oldest first; return how many this call wrote."""
    db = backend.db_alias
    written = 0
    for minute in due_minutes(backend, now=now)[:limit]:
        counts = count_minute(backend, minute)
        try:
            with short_transaction(db, idle_limit=backend.config.heartbeat_timeout):
                DBMinuteSummary.objects.using(db).create(
                    backend_name=backend.alias,
                    minute=minute,
                    queues={name: queue.to_json() for name, queue in sorted(counts.items())},
                )
        except IntegrityError:
            continue  # another worker summarised this minute first
        written += 1
    if written:
        forget_old_minutes(backend, now=now)
    return written


def forget_old_minutes(backend: DatabaseBackend, *, now: datetime) -> int:
    """Delete summaries older than ``KEEP``; return how many."""
    deleted, _ = (
        DBMinuteSummary.objects.using(backend.db_alias)
        .filter(backend_name=backend.alias, minute__lt=minute_of(now - KEEP))
        .delete()
    )
    return deleted
