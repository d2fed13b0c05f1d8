"""Rate limits in the database: one ``DBRateBucket`` row per (queue, key).

A rate-limited row waits READY with its ``rate_key``, outside the claim's
index (``dbtasks_ready_idx``), in ``dbtasks_rate_idx``: one range per
(queue, key). ``claim_keys()`` starts the tasks of keys whose bucket is due,
in the transaction that moves the bucket's ``next_at`` on. On Postgres the
bucket is locked ``FOR UPDATE SKIP LOCKED`` (a claimer never waits for
another); SQLite's IMMEDIATE transaction holds the write lock. The starts
are the claims' times, which the attempts record as theirs.

Up to ``LOG_LIMIT`` starts per period, the bucket logs the last ``limit``
starts: a key may start as many tasks as the window (now - period, now]
has room for, and ``next_at`` is when the oldest logged start leaves it.
Larger limits would make that log large, so they keep one timestamp and
space their starts ``period / limit`` apart. Either way no window of
``period`` holds more than ``limit`` starts.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from datetime import timedelta
from typing import Any

from django.db import connections
from django.db import transaction
from django.db.models import F

from dbtasks.models import READY
from dbtasks.models import DBRateBucket
from dbtasks.models import DBTaskResult
from dbtasks.rate_limits import RateLimit
from dbtasks.sql.claim import ORDER
from dbtasks.sql.claim import claim_chosen

# A (queue, key) pair: a bucket.
Pair = tuple[str, str]
# Limits up to this many starts per period keep a log of them (a sliding
# window, bursts allowed); larger ones space their starts evenly.
LOG_LIMIT = 100
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Buckets idle this long (and past their period) are deleted with the purge.
IDLE_BUCKET_AGE = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class KeyedClaim:
    """What ``claim_keys()`` found: the rows it started, and what to wait for next."""

    rows: list[DBTaskResult]
    # Keys that had a slot but no READY row left: stop looking at them.
    drained: set[Pair]
    # The earliest time a key with waiting rows gets its next slot (None: no such key).
    next_slot_at: datetime | None
    # Keys without a bucket (deleted in the admin, say): ensure_buckets() makes them again.
    missing: set[Pair]


def waiting_keys(db: str, backend_name: str, queues: Iterable[str], *, cap: int) -> dict[Pair, str]:
    """The (queue, key) pairs with READY rows waiting, each with the task path of one row.

    One index seek per key and queue (a loose index scan of dbtasks_rate_idx),
    so its cost follows the number of keys, not of waiting rows.
    """
    found: dict[Pair, str] = {}
    rows = DBTaskResult.objects.using(db).filter(backend_name=backend_name, status=READY)
    for queue in queues:
        last = ""
        while len(found) < cap:
            first = (
                rows.filter(queue_name=queue, rate_key__gt=last)
                .exclude(rate_key="")
                .order_by("rate_key")
                .values_list("rate_key", "task_path")
                .first()
            )
            if first is None:
                break
            last, found[(queue, first[0])] = first
    return found


def release(db: str, backend_name: str, pair: Pair) -> int:
    """Let a key's waiting rows be claimed as any others: their limit is no longer configured."""
    queue, key = pair
    return (
        DBTaskResult.objects.using(db)
        .filter(backend_name=backend_name, queue_name=queue, rate_key=key, status=READY)
        .update(rate_key="")
    )


def ensure_buckets(
    db: str, backend_name: str, limits: Mapping[Pair, RateLimit], now: datetime
) -> None:
    """Create the buckets of ``limits`` that do not exist yet (due at once)."""
    DBRateBucket.objects.using(db).bulk_create(
        [
            DBRateBucket(
                backend_name=backend_name,
                queue_name=queue,
                key=key,
                limit=limit.limit,
                period=limit.period,
                next_at=now,
            )
            for (queue, key), limit in limits.items()
        ],
        ignore_conflicts=True,
    )


def claim_keys(
    *,
    db: str,
    backend_name: str,
    limits: Mapping[Pair, RateLimit],
    worker_id: str,
    limit: int,
    now: datetime,
) -> KeyedClaim:
    """Start up to ``limit`` tasks of the due keys of ``limits``; move their buckets on."""
    if not limits or limit < 1:
        return KeyedClaim([], set(), None, set())
    buckets = DBRateBucket.objects.using(db).filter(
        backend_name=backend_name,
        queue_name__in={queue for queue, _ in limits},
        key__in={key for _, key in limits},
    )
    at = connections[db].ops.adapt_datetimefield_value(now)
    rows: list[DBTaskResult] = []
    drained: set[Pair] = set()
    with transaction.atomic(using=db):
        due = buckets.filter(next_at__lte=now).order_by("next_at")
        if connections[db].features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True)
        for bucket in due[: limit + 4]:  # a few spare: another queue may share a key name
            pair = (bucket.queue_name, bucket.key)
            rate_limit = limits.get(pair)
            take = min(_free(bucket, rate_limit, now), limit - len(rows)) if rate_limit else 0
            if rate_limit is None or take < 1:
                continue
            claimed = claim_chosen(
                db, _best_rows(db, backend_name, pair, now, take), worker_id=worker_id, at=at
            )
            if len(claimed) < take:
                drained.add(pair)
            if claimed:
                rows += claimed
                _started(bucket, rate_limit, now, len(claimed))
    # When each key may start next. A key still due here was taken by
    # another worker whose claim has not committed yet: about an interval on.
    next_slot_at: datetime | None = None
    missing = set(limits)
    for bucket in buckets.only("queue_name", "key", "next_at", "limit", "period"):
        pair = (bucket.queue_name, bucket.key)
        missing.discard(pair)
        rate_limit = limits.get(pair)
        if rate_limit is None or pair in drained:
            continue
        next_at = bucket.next_at
        if (bucket.limit, bucket.period) != (rate_limit.limit, rate_limit.period):
            next_at = _retune(bucket, rate_limit, now)
        at_the_latest = next_at if next_at > now else now + rate_limit.interval
        next_slot_at = min(next_slot_at or at_the_latest, at_the_latest)
    return KeyedClaim(rows, drained, next_slot_at, missing)


def _retune(bucket: DBRateBucket, rate_limit: RateLimit, now: datetime) -> datetime:
    """The OPTIONS changed the key's limit: work its next start out again under the new one.

    Guarded on the old limit, so that of two workers doing it, one does.
    """
    if rate_limit.limit > LOG_LIMIT:
        next_at = min(bucket.next_at, now + rate_limit.interval)
    else:
        recent = _recent(bucket, rate_limit, now)[-rate_limit.limit :]
        next_at = now
        if len(recent) >= rate_limit.limit:
            next_at = EPOCH + timedelta(microseconds=recent[0]) + rate_limit.period
    DBRateBucket.objects.using(bucket._state.db).filter(
        pk=bucket.pk, limit=bucket.limit, period=bucket.period
    ).update(limit=rate_limit.limit, period=rate_limit.period, next_at=next_at)
    return next_at


def _best_rows(
    db: str, backend_name: str, pair: Pair, now: datetime, count: int
) -> tuple[str, list[Any]]:
    """The ids of the key's best ``count`` READY rows (locked on Postgres), for claim_chosen().

    The conditions are written as dbtasks_rate_idx's predicate is, so that
    SQLite, which matches a partial index's terms literally, uses it.
    """
    connection = connections[db]
    table = connection.ops.quote_name(DBTaskResult._meta.db_table)
    lock = " FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""
    sql = (
        f"SELECT id FROM {table} WHERE {table}.status = '{READY.value}' "
        f"AND NOT ({table}.rate_key = '') AND {table}.backend_name = %s "
        f"AND {table}.queue_name = %s AND {table}.rate_key = %s "
        f"AND {table}.available_after <= %s ORDER BY {ORDER} LIMIT %s{lock}"
    )
    queue, key = pair
    at = connection.ops.adapt_datetimefield_value(now)
    return sql, [backend_name, queue, key, at, count]


def _micros(moment: datetime) -> int:
    """Microseconds since the epoch: exact, unlike a float of seconds."""
    return (moment - EPOCH) // timedelta(microseconds=1)


def _recent(bucket: DBRateBucket, rate_limit: RateLimit, now: datetime) -> list[int]:
    """The logged starts still inside the window (now - period, now]."""
    since = _micros(now - rate_limit.period)
    return [start for start in bucket.starts if start > since]


def _free(bucket: DBRateBucket, rate_limit: RateLimit, now: datetime) -> int:
    """How many of the key's tasks may start at ``now``."""
    if rate_limit.limit > LOG_LIMIT:
        return 1  # spaced: one per interval
    return rate_limit.limit - len(_recent(bucket, rate_limit, now))


def _started(bucket: DBRateBucket, rate_limit: RateLimit, now: datetime, count: int) -> None:
    """``count`` tasks of the bucket's key started at ``now``: when may the next?

    Up to LOG_LIMIT starts per period, the bucket logs its last ``limit``
    starts: the next may start when the oldest of them leaves the window
    (a burst of ``limit``, then one each time an old start ages out). Above
    it, starts are spaced ``period / limit`` apart, one timestamp.
    """
    starts: list[int] = []
    if rate_limit.limit > LOG_LIMIT:
        next_at = now + rate_limit.interval
    else:
        starts = (_recent(bucket, rate_limit, now) + [_micros(now)] * count)[-rate_limit.limit :]
        next_at = now
        if len(starts) >= rate_limit.limit:
            next_at = EPOCH + timedelta(microseconds=starts[0]) + rate_limit.period
    window: dict[str, Any] = {"window_starts": F("window_starts") + count}
    if bucket.window_started_at is None or now >= bucket.window_started_at + rate_limit.period:
        window = {"window_started_at": now, "window_starts": count}
    DBRateBucket.objects.using(bucket._state.db).filter(pk=bucket.pk).update(
        next_at=next_at,
        starts=starts,
        limit=rate_limit.limit,
        period=rate_limit.period,
        **window,
    )


def purge_idle_buckets(db: str, backend_name: str, now: datetime) -> int:
    """Delete the buckets of keys that started nothing for a day and hold no limit any more.

    A bucket whose ``next_at`` is a period or more in the past logs no start
    inside any window a new start could share, so forgetting it changes no
    claim; a worker that still follows its key makes it again. Return how
    many were deleted.
    """
    idle = DBRateBucket.objects.using(db).filter(
        backend_name=backend_name, next_at__lt=now - IDLE_BUCKET_AGE
    )
    ids = [
        pk
        for pk, next_at, period in idle.values_list("pk", "next_at", "period")
        if next_at + period <= now
    ]
    deleted, _ = DBRateBucket.objects.using(db).filter(pk__in=ids).delete()
    return deleted
