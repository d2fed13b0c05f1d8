"""Rate limits in the database: one ``DBRateBucket`` row per (queue, key).

A rate-limited row waits READY with its ``rate_key``, outside the claim's
index (``dbtasks_ready_idx``), in ``dbtasks_rate_idx``: one range per
(queue, key). ``claim_keys()`` starts at most one task per key whose bucket
is due, in the transaction that moves the bucket's ``next_at`` on by
``period / limit``. On Postgres the bucket is locked ``FOR UPDATE SKIP
LOCKED`` (a claimer never waits for another); SQLite's IMMEDIATE transaction
holds the write lock. Either way two workers never start the same key's
tasks less than ``period / limit`` apart, by the times they record as the
attempts' starts, so no window of ``period`` holds more than ``limit``.

Spacing starts instead of counting them in windows keeps the bucket one
timestamp, and the guarantee exact; the cost is that there is no burst.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
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
    """Start up to ``limit`` tasks, one per due key of ``limits``; move their buckets on."""
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
            if rate_limit is None or len(rows) >= limit:
                continue
            claimed = claim_chosen(
                db, _one_row(db, backend_name, pair, now), worker_id=worker_id, at=at
            )
            if not claimed:
                drained.add(pair)
                continue
            rows += claimed
            _started(bucket, rate_limit, now)
    # When each key may start next. A key still due here was taken by
    # another worker whose claim has not committed yet: about an interval on.
    next_slot_at: datetime | None = None
    missing = set(limits)
    for queue, key, next_at in buckets.values_list("queue_name", "key", "next_at"):
        pair = (queue, key)
        missing.discard(pair)
        if pair in limits and pair not in drained:
            at_the_latest = next_at if next_at > now else now + limits[pair].interval
            next_slot_at = min(next_slot_at or at_the_latest, at_the_latest)
    return KeyedClaim(rows, drained, next_slot_at, missing)


def _one_row(db: str, backend_name: str, pair: Pair, now: datetime) -> tuple[str, list[Any]]:
    """The id of the key's best READY row (locked on Postgres), as claim_chosen() takes it.

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
        f"AND {table}.available_after <= %s ORDER BY {ORDER} LIMIT 1{lock}"
    )
    queue, key = pair
    return sql, [backend_name, queue, key, connection.ops.adapt_datetimefield_value(now)]


def _started(bucket: DBRateBucket, rate_limit: RateLimit, now: datetime) -> None:
    """A task of the bucket's key started at ``now``: its next may start an interval later."""
    window: dict[str, Any] = {"window_starts": F("window_starts") + 1}
    if bucket.window_started_at is None or now >= bucket.window_started_at + rate_limit.period:
        window = {"window_started_at": now, "window_starts": 1}
    DBRateBucket.objects.using(bucket._state.db).filter(pk=bucket.pk).update(
        next_at=now + rate_limit.interval,
        limit=rate_limit.limit,
        period=rate_limit.period,
        **window,
    )
