"""Staging: SCHEDULED rows that are due become READY, so a worker can claim them.

A task enqueued with ``run_after`` in the future, or a retry waiting out its
backoff, is SCHEDULED, outside the claim's index (``dbtasks_ready_idx``), so
a million tasks scheduled for next week cost the claim nothing. Every worker
stages due rows about twice a second (``worker/maintenance.py``); any worker
may do it, and doing it twice is harmless: the UPDATE only changes rows
still SCHEDULED. It works in batches, soonest first, through
``dbtasks_scheduled_idx``.

On Postgres the same statement notifies each queue that got rows, so idle
workers wake at once (``notify.py``); elsewhere they find them at their next
poll.
"""

from __future__ import annotations

from datetime import datetime

from django.db import connections

from dbtasks.models import READY
from dbtasks.models import SCHEDULED
from dbtasks.models import DBTaskResult
from dbtasks.sql.notify import CHANNEL

# Rows made READY per statement, and statements per call: a call stays short
# even when a burst of rows falls due at once; the rest follow next call.
BATCH_SIZE = 1000
MAX_BATCHES = 10


def stage_due(*, db: str, now: datetime, notify: bool = False) -> dict[str, int]:
    """Make the SCHEDULED rows due at ``now`` READY; return how many per queue."""
    staged: dict[str, int] = {}
    for _ in range(MAX_BATCHES):
        batch = stage_batch(db=db, now=now, notify=notify)
        for queue, count in batch.items():
            staged[queue] = staged.get(queue, 0) + count
        if sum(batch.values()) < BATCH_SIZE:
            break
    return staged


def stage_batch(*, db: str, now: datetime, notify: bool) -> dict[str, int]:
    """One statement: up to BATCH_SIZE due rows become READY; how many per queue."""
    connection = connections[db]
    table = connection.ops.quote_name(DBTaskResult._meta.db_table)
    at = connection.ops.adapt_datetimefield_value(now)
    # Both statuses are constants in the SQL, so the planner can match the
    # partial indexes (see one_queue() in claim.py).
    scheduled, ready = f"'{SCHEDULED}'", f"'{READY.value}'"
    if connection.vendor == "postgresql":
        # SKIP LOCKED: two workers staging at once take different rows, and
        # neither waits. The outer status test keeps a row another
        # statement changed meanwhile as it is.
        signal = "pg_notify(%s, queue_name)" if notify else "NULL"
        sql = f"""
            WITH due AS (
                SELECT id FROM {table}
                WHERE status = {scheduled} AND available_after <= %s
                ORDER BY available_after
                LIMIT %s
                FOR UPDATE SKIP LOCKED
            ), staged AS (
                UPDATE {table} SET status = {ready}
                FROM due
                WHERE {table}.id = due.id AND {table}.status = {scheduled}
                RETURNING {table}.queue_name
            )
            SELECT queue_name, count(*), {signal}
            FROM staged GROUP BY queue_name
        """  # Only quoted names, placeholders and constants are interpolated.
        params = [at, BATCH_SIZE, *([CHANNEL] if notify else [])]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return {queue: count for queue, count, _ in cursor.fetchall()}
    sql = f"""
        UPDATE {table} SET status = {ready}
        WHERE id IN (
            SELECT id FROM {table}
            WHERE status = {scheduled} AND available_after <= %s
            ORDER BY available_after
            LIMIT %s
        ) AND status = {scheduled}
        RETURNING queue_name
    """  # Only quoted names, placeholders and constants are interpolated.
    staged: dict[str, int] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, [at, BATCH_SIZE])
        for (queue,) in cursor.fetchall():
            staged[queue] = staged.get(queue, 0) + 1
    return staged
