"""Figure 5: claim latency with 10,000 and with 1,000,000 finished rows in the table.

Each database arm gets two databases, filled once per run with finished
(SUCCESSFUL) rows by one INSERT ... SELECT (Postgres: ``generate_series``;
SQLite: a recursive CTE), then on Postgres ``VACUUM ANALYZE`` (autovacuum
would get there soon after such a load; on SQLite nothing: Django never runs
ANALYZE, so the planner has no statistics, as in an app).

Each round, in each database: enqueue one task (public API, not timed), time
the system's own claim (dbtasks: ``dbtasks.sql.claim.claim()``;
django-tasks-db: the locking transaction of its ``db_worker`` loop), mark the
task finished (not timed); 20 warm-up claims, then ``claims`` timed ones.
``growth`` = median at 1,000,000 / median at 10,000: near 1 when an index
carries the claim, near 100 when it scans the finished rows. The claim's
query plan is kept in the JSON.
"""

from __future__ import annotations

import time
from typing import Any

from bench.harness import DBTASKS
from bench.harness import TASKSDB
from bench.harness import Arm
from bench.harness import Metric
from bench.harness import percentile
from bench.harness import rotated
from bench.orchestrator import ArmFailed
from bench.orchestrator import Bench
from bench.queues import DjangoQueue

NAME = "claim_latency"
TITLE = "5. Claim latency with finished rows in the table"
METRICS = (
    Metric("small", "10,000 finished rows", "ms", higher_is_better=False, digits=2),
    Metric("large", "1,000,000 finished rows", "ms", higher_is_better=False, digits=2),
    Metric("growth", "1,000,000 ÷ 10,000", "x", higher_is_better=False, digits=2, ratio=False),
)
WARM_UP = 20


def params(quick: bool) -> dict[str, Any]:
    return {
        "sizes": {"small": 10_000, "large": 100_000 if quick else 1_000_000},
        "claims": 50 if quick else 200,
    }


def run(bench: Bench) -> None:
    settings = params(bench.quick)
    figure = bench.figure_results(NAME)
    figure["params"] = settings
    arms = bench.arms_for((DBTASKS, TASKSDB))
    urls: dict[tuple[str, str], str] = {}
    for arm in list(arms):
        for size, rows in settings["sizes"].items():
            started = time.monotonic()
            try:
                url = bench.database(arm, f"claim_{size}")
                setup = bench.call(arm, NAME, "fill", {"rows": rows}, url=url, timeout=1800)
            except ArmFailed as error:
                bench.error(NAME, arm, error)
                arms.remove(arm)
                break
            urls[arm.name, size] = url
            figure["setup"].setdefault(arm.name, {})[size] = setup
            print(
                f"    filled {arm.name} with {rows:,} finished rows "
                f"in {time.monotonic() - started:.0f}s",
                flush=True,
            )
    for round_number in range(1, bench.rounds + 1):
        for arm in rotated(arms, round_number - 1):
            data: dict[str, Any] = {"round": round_number}
            # Alternate which size goes first, round by round.
            for size in rotated(list(settings["sizes"]), round_number - 1):
                try:
                    measured = bench.call(
                        arm, NAME, "claim", settings, url=urls[arm.name, size], timeout=600
                    )
                except ArmFailed as error:
                    bench.error(NAME, arm, error)
                    break
                data[size] = measured["median_ms"]
                data[f"{size}_detail"] = measured
            else:
                data["growth"] = data["large"] / data["small"]
                bench.record(NAME, arm, data)
                print(
                    f"    round {round_number} {arm.name:<26} small={data['small']:.2f} ms, "
                    f"large={data['large']:.2f} ms, growth={data['growth']:.2f}x",
                    flush=True,
                )


# --- Inside the arm ---------------------------------------------------------------


def measure(arm: Arm, phase: str, params: dict[str, Any]) -> dict[str, Any]:
    queue = DjangoQueue(arm)
    if phase == "fill":
        return fill(queue, params["rows"])
    return time_claims(queue, params["claims"])


def column_values(queue: DjangoQueue, stamp: str) -> dict[str, str]:
    """SQL for each column of a finished no-op row; ``stamp`` is its timestamp."""
    postgres = queue.connection.vendor == "postgresql"
    args = '\'{"args": [], "kwargs": {}}\''
    if queue.arm.system == DBTASKS:
        return {
            "task_path": "'bench.tasks.noop'",
            "backend_name": "'default'",
            "queue_name": "'default'",
            "priority": "0",
            "run_after": "NULL",
            "takes_context": "false" if postgres else "0",
            "arguments": args,
            "status": "'SUCCESSFUL'",
            "enqueued_at": stamp,
            "started_at": stamp,
            "finished_at": stamp,
            "last_attempted_at": stamp,
            "return_value": "NULL",
            "available_after": stamp,
            "attempt_count": "1",
            "worker_id": "''",
        }
    return {
        "id": "gen_random_uuid()" if postgres else "lower(hex(randomblob(16)))",
        "status": "'SUCCESSFUL'",
        "enqueued_at": stamp,
        "started_at": stamp,
        "finished_at": stamp,
        "args_kwargs": args,
        "priority": "0",
        "task_path": "'bench.tasks.noop'",
        "worker_ids": "'[\"bench\"]'",
        "queue_name": "'default'",
        "backend_name": "'default'",
        "run_after": "'9999-01-01 00:00:00+00'" if postgres else "'9999-01-01 00:00:00'",
        "return_value": "NULL",
        "exception_class_path": "''",
        "traceback": "''",
    }


def fill(queue: DjangoQueue, rows: int) -> dict[str, Any]:
    """Insert ``rows`` finished rows in one statement; analyse on Postgres."""
    from django.db.models import NOT_PROVIDED

    connection = queue.connection
    postgres = connection.vendor == "postgresql"
    stamp = (
        "now() - make_interval(secs => i)"
        if postgres
        else "strftime('%Y-%m-%d %H:%M:%f', 'now', '-' || i || ' seconds')"
    )
    values = column_values(queue, stamp)
    for field in queue.model._meta.concrete_fields:
        # A column added since this was written: its database default, its
        # constant default, or NULL if it may be; else a bug here.
        if field.column in values or (field.primary_key and field.column == "id"):
            continue
        if field.db_default is not NOT_PROVIDED:
            continue  # the database fills it
        if isinstance(field.default, bool | int | str):
            # Django's own quoting of a default, as its migrations write them.
            values[field.column] = connection.schema_editor().quote_value(field.default)
        elif field.null:
            values[field.column] = "NULL"
        else:
            raise RuntimeError(f"No fill value for {field.column}: update {__name__}.")
    columns = [field.column for field in queue.model._meta.concrete_fields]
    chosen = [column for column in columns if column in values]
    table = connection.ops.quote_name(queue.model._meta.db_table)
    names = ", ".join(connection.ops.quote_name(column) for column in chosen)
    select = ", ".join(values[column] for column in chosen)
    if postgres:
        sql = f"INSERT INTO {table} ({names}) SELECT {select} FROM generate_series(1, %s) AS s(i)"
    else:
        sql = (
            "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < %s) "
            f"INSERT INTO {table} ({names}) SELECT {select} FROM s"
        )
    queue.reset()
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(sql, [rows])  # Only column names and constants are interpolated.
        # Write the load out now, not while a later round is being timed.
        if postgres:
            cursor.execute(f"VACUUM ANALYZE {table}")
            cursor.execute("CHECKPOINT")
        else:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return {"rows": queue.model.objects.count(), "seconds": round(time.perf_counter() - started, 1)}


def claim_function(queue: DjangoQueue) -> Any:
    """The system's own claim, as its worker runs it; returns the claimed row or None."""
    if queue.arm.system == DBTASKS:
        from django.utils import timezone

        from dbtasks.sql.claim import claim

        def claim_dbtasks() -> Any:
            rows = claim(
                db="default",
                backend_name="default",
                queues=("default",),
                worker_id="bench",
                limit=1,
                now=timezone.now(),
            )
            return rows[0] if rows else None

        return claim_dbtasks

    from django_tasks_db.models import DBTaskResult
    from django_tasks_db.utils import exclusive_transaction

    def claim_tasksdb() -> Any:
        # The body of db_worker's loop up to running the task.
        tasks = DBTaskResult.objects.ready().filter(backend_name="default")
        tasks = tasks.filter(queue_name__in=["default"])
        with exclusive_transaction(tasks.db):
            task_result = tasks.get_locked()
            if task_result is not None:
                task_result.claim("bench")
        return task_result

    return claim_tasksdb


def finish(queue: DjangoQueue, row: Any) -> None:
    from django.utils import timezone

    if queue.arm.system == DBTASKS:
        queue.model.objects.filter(pk=row.pk).update(
            status="SUCCESSFUL", finished_at=timezone.now(), worker_id=""
        )
    else:
        row.set_successful(None)


def time_claims(queue: DjangoQueue, claims: int) -> dict[str, Any]:
    claim_one = claim_function(queue)
    timings: list[float] = []
    for index in range(WARM_UP + claims):
        queue.enqueue("noop")
        started = time.perf_counter()
        row = claim_one()
        elapsed = time.perf_counter() - started
        if row is None:
            raise RuntimeError("The claim found no ready task.")
        finish(queue, row)
        if index >= WARM_UP:
            timings.append(elapsed * 1000)
    return {
        "median_ms": percentile(timings, 0.5),
        "p95_ms": percentile(timings, 0.95),
        "min_ms": min(timings),
        "rows": queue.model.objects.count(),
        "plan": plan_of(queue, claim_one),
    }


def plan_of(queue: DjangoQueue, claim_one: Any) -> list[str]:
    """The query plan of the claim's first data statement, with its real parameters."""
    connection = queue.connection
    captured: list[tuple[str, Any]] = []

    def capture(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        captured.append((sql, params))
        return execute(sql, params, many, context)

    queue.enqueue("noop")
    with connection.execute_wrapper(capture):
        row = claim_one()
    if row is not None:
        finish(queue, row)
    statements = [
        (sql, p) for sql, p in captured if sql.lstrip().upper().startswith(("SELECT", "UPDATE"))
    ]
    if not statements:
        return []
    sql, params = statements[0]
    explain = "EXPLAIN " if connection.vendor == "postgresql" else "EXPLAIN QUERY PLAN "
    with connection.cursor() as cursor:
        cursor.execute(explain + sql, params)
        return [" | ".join(str(column) for column in line) for line in cursor.fetchall()]
