"""The dashboard's controls panel: paused queues, concurrency limits, rate limits.

Four small queries: the paused queues and the limits' own rows (one per
key, and at most ``limit`` of each shown), then the tasks waiting on the keys
shown, counted through the indexes the claims use (``dbtasks_concurrency_idx``
for BLOCKED rows, ``dbtasks_rate_idx`` for throttled READY ones), so they
read only those keys' waiting rows, never the history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta

from django.db.models import Count

from dbtasks.backend import DatabaseBackend
from dbtasks.models import BLOCKED
from dbtasks.models import READY
from dbtasks.models import DBPausedQueue
from dbtasks.models import DBRateBucket
from dbtasks.models import DBSemaphore
from dbtasks.models import DBTaskResult
from dbtasks.ops.text import format_duration


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueControl:
    """A queue of the backend, and whether (since when) it is paused."""

    name: str
    paused_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConcurrencyRow:
    """One concurrency key: its slots, and the tasks BLOCKED waiting for one."""

    key: str
    limit: int
    in_use: int
    blocked: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RateRow:
    """One rate-limited key on a queue: its limit, its starts this period, who waits."""

    queue_name: str
    key: str
    rate: str  # "10 per 1s"
    starts: int  # in the period that began at window_started_at (0 once it is over)
    window_started_at: datetime | None
    next_at: datetime
    waiting: int  # READY, waiting for a slot


@dataclass(frozen=True, slots=True, kw_only=True)
class Controls:
    queues: list[QueueControl]
    concurrency: list[ConcurrencyRow]
    rates: list[RateRow]


def describe_rate(limit: int, period: timedelta) -> str:
    """``10 per 1s``, ``60 per 1m``, ``5 per 500ms``."""
    if period < timedelta(seconds=1):
        return f"{limit} per {period.total_seconds() * 1000:g}ms"
    return f"{limit} per {format_duration(period)}"


def controls(backend: DatabaseBackend, *, now: datetime, limit: int = 20) -> Controls:
    """What the controls panel shows for ``backend`` (the busiest ``limit`` keys of each kind)."""
    db, alias = backend.db_alias, backend.alias
    paused = dict(
        DBPausedQueue.objects.using(db)
        .filter(backend_name=alias)
        .values_list("queue_name", "paused_at")
    )
    queues = [
        QueueControl(name=name, paused_at=paused.get(name))
        for name in sorted(set(backend.queues) | set(paused))
    ]
    return Controls(
        queues=queues,
        concurrency=_concurrency(db, alias, limit),
        rates=_rates(db, alias, now, limit),
    )


def _concurrency(db: str, alias: str, limit: int) -> list[ConcurrencyRow]:
    semaphores = list(
        DBSemaphore.objects.using(db).filter(backend_name=alias).order_by("-in_use", "key")[:limit]
    )
    blocked = dict(
        DBTaskResult.objects.using(db)
        .filter(
            backend_name=alias,
            concurrency_key__in=[semaphore.key for semaphore in semaphores],
            status=BLOCKED,
        )
        .values_list("concurrency_key")
        .annotate(count=Count("pk"))
        .order_by()
    )
    return [
        ConcurrencyRow(
            key=semaphore.key,
            limit=semaphore.limit,
            in_use=semaphore.in_use,
            blocked=blocked.get(semaphore.key, 0),
        )
        for semaphore in semaphores
    ]


def _rates(db: str, alias: str, now: datetime, limit: int) -> list[RateRow]:
    # The keys that started something last first: the ones in use.
    buckets = list(
        DBRateBucket.objects.using(db)
        .filter(backend_name=alias)
        .order_by("-next_at", "queue_name", "key")[:limit]
    )
    waiting: dict[tuple[str, str], int] = {}
    if buckets:
        counted = (
            DBTaskResult.objects.using(db)
            .filter(
                backend_name=alias,
                queue_name__in={bucket.queue_name for bucket in buckets},
                rate_key__in={bucket.key for bucket in buckets},
                status=READY,
            )
            .exclude(rate_key="")
            .values_list("queue_name", "rate_key")
            .annotate(count=Count("pk"))
            .order_by()
        )
        waiting = {(queue, key): count for queue, key, count in counted}
    return [
        RateRow(
            queue_name=bucket.queue_name,
            key=bucket.key,
            rate=describe_rate(bucket.limit, bucket.period),
            starts=bucket.window_starts
            if bucket.window_started_at is not None
            and now < bucket.window_started_at + bucket.period
            else 0,
            window_started_at=bucket.window_started_at,
            next_at=bucket.next_at,
            waiting=waiting.get((bucket.queue_name, bucket.key), 0),
        )
        for bucket in buckets
    ]
