"""Outcomes and durations of the recent attempts, per queue (the metrics' histogram)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any

from django.db.models import Count
from django.db.models import DurationField
from django.db.models import F
from django.db.models import Q
from django.db.models import QuerySet
from django.db.models import Sum

from dbtasks.backend import DatabaseBackend
from dbtasks.models import FAILED
from dbtasks.models import SUCCESSFUL
from dbtasks.models import DBTaskAttempt
from dbtasks.ops.throughput import results_active_since
from dbtasks.ops.window import DURATION_BUCKETS
from dbtasks.ops.window import WINDOW


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueAttempts:
    """The attempts of one queue that stopped within WINDOW."""

    queue_name: str
    successful: int
    failed: int
    duration_sum: timedelta
    # Cumulative counts: attempts that took at most DURATION_BUCKETS[i] seconds.
    bucket_counts: tuple[int, ...]

    @property
    def count(self) -> int:
        return self.successful + self.failed


def attempt_stats(
    backend: DatabaseBackend, *, now: datetime, window: timedelta = WINDOW
) -> list[QueueAttempts]:
    """Outcomes and duration histogram of attempts stopped within ``window``, per queue.

    One aggregate query: each histogram bucket is a conditional count.
    Queues without attempts in the window are absent.
    """
    duration_at_most = {
        f"le_{index}": Count(
            "pk", filter=Q(stopped_at__lte=F("started_at") + timedelta(seconds=bound))
        )
        for index, bound in enumerate(DURATION_BUCKETS)
    }
    # Mapping, not the plugin's TypedDict: the bucket columns are named at run time.
    rows: QuerySet[DBTaskAttempt, Mapping[str, Any]] = (
        DBTaskAttempt.objects.using(backend.db_alias)
        .filter(result__backend_name=backend.alias, stopped_at__gte=now - window)
        .filter(results_active_since(now - window))
        .values("result__queue_name")
        .annotate(
            successful=Count("pk", filter=Q(outcome=SUCCESSFUL)),
            failed=Count("pk", filter=Q(outcome=FAILED)),
            duration_sum=Sum(F("stopped_at") - F("started_at"), output_field=DurationField()),
            **duration_at_most,
        )
        .order_by("result__queue_name")
    )
    return [
        QueueAttempts(
            queue_name=row["result__queue_name"],
            successful=row["successful"],
            failed=row["failed"],
            duration_sum=row["duration_sum"] or timedelta(0),
            bucket_counts=tuple(row[f"le_{index}"] for index in range(len(DURATION_BUCKETS))),
        )
        for row in rows
    ]
