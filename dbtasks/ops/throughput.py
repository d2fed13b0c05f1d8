"""How many attempts finished in each recent minute, by outcome (the dashboard's chart)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta

from django.db.models import Count
from django.db.models import Q
from django.db.models.functions import TruncMinute

from dbtasks.backend import DatabaseBackend
from dbtasks.models import FAILED
from dbtasks.models import FINISHED
from dbtasks.models import SUCCESSFUL
from dbtasks.models import UNFINISHED
from dbtasks.models import DBTaskAttempt


def results_active_since(since: datetime) -> Q:
    """Restrict attempts to those of tasks that can have had an attempt stop after ``since``.

    Redundant in meaning: a task with an attempt that stopped after ``since``
    is unfinished (retrying, running, or re-queued by hand), or finished at
    or after that attempt. But it lets the database find those tasks through
    the partial indexes ``dbtasks_unfinished_idx`` and ``dbtasks_finished_idx``
    instead of scanning the whole task table for the join (measured on
    Postgres with 300k tasks: bitmap index scans instead of a sequential scan).
    """
    return Q(result__status__in=UNFINISHED) | Q(
        result__status__in=FINISHED, result__finished_at__gte=since
    )


@dataclass(frozen=True, slots=True)
class MinuteCount:
    """Attempts that finished within one minute, by outcome."""

    minute: datetime  # the minute's start, UTC
    successful: int
    failed: int

    @property
    def total(self) -> int:
        return self.successful + self.failed


def throughput(backend: DatabaseBackend, *, now: datetime, minutes: int = 60) -> list[MinuteCount]:
    """Count finished attempts per minute for the last ``minutes`` minutes, oldest first.

    The last bucket is the current, partial minute. One query, grouped in
    SQL by minute and outcome, so at most ``2 * minutes`` rows come back
    however busy the hour was.
    """
    current = now.astimezone(UTC).replace(second=0, microsecond=0)
    first = current - timedelta(minutes=minutes - 1)
    grouped = (
        DBTaskAttempt.objects.using(backend.db_alias)
        .filter(result__backend_name=backend.alias, stopped_at__gte=first)
        .filter(results_active_since(first))
        .annotate(minute=TruncMinute("stopped_at", tzinfo=UTC))
        .values("minute", "outcome")
        .annotate(count=Count("pk"))
        .order_by()
    )
    counts: dict[tuple[datetime, str], int] = {
        (row["minute"], row["outcome"]): row["count"] for row in grouped
    }
    buckets = []
    for offset in range(minutes):
        minute = first + timedelta(minutes=offset)
        buckets.append(
            MinuteCount(
                minute=minute,
                successful=counts.get((minute, SUCCESSFUL), 0),
                failed=counts.get((minute, FAILED), 0),
            )
        )
    return buckets
