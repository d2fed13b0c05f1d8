"""The claim by shape at two sizes, and bulk enqueue against a loop (``bench/scale.py``).

Rows the claim does not take are written by one INSERT ... SELECT each
(Postgres: ``generate_series``; SQLite: a recursive CTE), then analysed.
Each timed claim finds exactly one row of its own (enqueued, not timed,
just before) and the claimed row is then marked finished (not timed); the
"empty" column times a claim that finds nothing, a polling worker's case.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

CLAIMS = 100
WARM_UP = 10
WEEK = 7 * 24 * 3600

# name: (queue, status, priority, seconds from now to available_after, queues served)
SHAPES: dict[str, tuple[str, str, int, int, list[str]]] = {
    "finished rows": ("default", "SUCCESSFUL", 0, -3600, ["default"]),
    "another queue's READY backlog": ("other", "READY", 0, -60, ["default"]),
    "own queue, priority 100, due next week": ("default", "SCHEDULED", 100, WEEK, ["default"]),
    "two queues served, one with a backlog": ("other", "READY", -10, -60, ["default", "other"]),
}


def fill(count: int, *, queue: str, status: str, priority: int, due_in: int) -> None:
    """Insert ``count`` no-op rows with these values in one statement; analyse."""
    from django.db import connection

    from dbtasks.models import DBTaskResult

    postgres = connection.vendor == "postgresql"
    if postgres:
        at = f"now() + make_interval(secs => {due_in}) - make_interval(secs => i / 1000.0)"
    else:
        at = (
            f"strftime('%Y-%m-%d %H:%M:%f', 'now', '{due_in:+d} seconds', "
            "'-' || (i / 1000.0) || ' seconds')"
        )
    finished = status in ("SUCCESSFUL", "FAILED")
    values = {
        "task_path": "'bench.tasks.noop'",
        "backend_name": "'default'",
        "queue_name": f"'{queue}'",
        "priority": str(priority),
        "claim_priority": str(priority),
        "takes_context": "false" if postgres else "0",
        "arguments": '\'{"args": [], "kwargs": {}}\'',
        "status": f"'{status}'",
        "enqueued_at": at,
        "started_at": at if finished else "NULL",
        "finished_at": at if finished else "NULL",
        "last_attempted_at": at if finished else "NULL",
        "available_after": at,
        "attempt_count": "1" if finished else "0",
        "worker_id": "''",
    }
    for field in DBTaskResult._meta.concrete_fields:
        if field.column and field.column not in values and not field.primary_key:
            if field.has_db_default():
                continue  # the database fills it in
            if not field.null:
                raise RuntimeError(f"No fill value for {field.column}: update {__name__}.")
            values[field.column] = "NULL"
    quote = connection.ops.quote_name
    table = quote(DBTaskResult._meta.db_table)
    names = ", ".join(quote(column) for column in values)
    select = ", ".join(values.values())
    if postgres:
        sql = f"INSERT INTO {table} ({names}) SELECT {select} FROM generate_series(1, %s) AS s(i)"
    else:
        sql = (
            "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < %s) "
            f"INSERT INTO {table} ({names}) SELECT {select} FROM s"
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, [count])  # Only names and constants are interpolated.
        cursor.execute(f"ANALYZE {table}")


def reset() -> None:
    from django.db import connection

    from dbtasks.models import DBTaskAttempt
    from dbtasks.models import DBTaskResult

    with connection.cursor() as cursor:
        for model in (DBTaskAttempt, DBTaskResult):
            table = connection.ops.quote_name(model._meta.db_table)
            if connection.vendor == "postgresql":
                cursor.execute(f"TRUNCATE {table} CASCADE")
            else:
                cursor.execute(f"DELETE FROM {table}")
        if connection.vendor == "postgresql":
            cursor.execute("CHECKPOINT")
        else:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def time_claims(queues: list[str]) -> dict[str, float]:
    """Median ms of a claim that takes one row, and of one that finds none."""
    from django.utils import timezone

    from bench import tasks
    from dbtasks.models import DBTaskResult
    from dbtasks.sql.claim import claim

    def one() -> float:
        started = time.perf_counter()
        rows = claim(
            db="default",
            backend_name="default",
            queues=queues,
            worker_id="bench",
            limit=1,
            now=timezone.now(),
        )
        elapsed = (time.perf_counter() - started) * 1000
        if rows:
            DBTaskResult.objects.filter(pk__in=[row.pk for row in rows]).update(
                status="SUCCESSFUL", finished_at=timezone.now(), worker_id=""
            )
        return elapsed

    taking, empty = [], []
    for _ in range(WARM_UP + CLAIMS):
        tasks.noop.enqueue()
        taking.append(one())
        empty.append(one())
    return {
        "claim_ms": round(statistics.median(taking[WARM_UP:]), 3),
        "empty_ms": round(statistics.median(empty[WARM_UP:]), 3),
    }


def claim_by_shape(sizes: tuple[int, ...]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    reset()
    results["empty table"] = time_claims(["default"])
    print(f"  claim on an empty table: {results['empty table']}", flush=True)
    for shape, (queue, status, priority, due_in, served) in SHAPES.items():
        for size in sizes:
            reset()
            started = time.monotonic()
            fill(size, queue=queue, status=status, priority=priority, due_in=due_in)
            filled = time.monotonic() - started
            measured = time_claims(served)
            results[f"{shape} @ {size:,}"] = measured
            print(f"  {shape} @ {size:,} (filled in {filled:.0f}s): {measured}", flush=True)
    reset()
    return results


def bulk_vs_loop(count: int) -> dict[str, Any]:
    """Microseconds per task: enqueue() in a loop (autocommit, one transaction), bulk."""
    from django.db import transaction

    from bench import tasks
    from dbtasks.bulk import enqueue_many

    def per_task(action: Any) -> float:
        reset()
        started = time.perf_counter()
        action()
        return round((time.perf_counter() - started) * 1e6 / count, 1)

    def loop_in_transaction() -> None:
        with transaction.atomic():
            for n in range(count):
                tasks.stamp.enqueue(n)

    results = {
        "enqueue() loop, autocommit": per_task(
            lambda: [tasks.stamp.enqueue(n) for n in range(count)]
        ),
        "enqueue() loop, one transaction": per_task(loop_in_transaction),
        "enqueue_many()": per_task(
            lambda: enqueue_many(tasks.stamp, [((n,), {}) for n in range(count)])
        ),
    }
    results["speed-up vs loop in a transaction"] = round(
        results["enqueue() loop, one transaction"] / results["enqueue_many()"], 1
    )
    results["speed-up vs autocommit loop"] = round(
        results["enqueue() loop, autocommit"] / results["enqueue_many()"], 1
    )
    print(f"  bulk enqueue ({count:,} tasks), µs per task: {results}", flush=True)
    reset()
    return results
