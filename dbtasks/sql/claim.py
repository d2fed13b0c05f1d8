"""Step 4 of the tour: a worker claims READY rows, atomically.

One statement does it: an UPDATE that marks the best READY rows RUNNING for
this worker and returns them. On Postgres the inner SELECTs take row locks
with ``FOR UPDATE SKIP LOCKED``, so concurrent workers each get different
rows and never wait for one another. SQLite has no row locks; its single
writer lock serialises the statement (WAL plus a busy timeout make that
wait short instead of an error).

Its cost does not depend on the rows it does not take. Only READY rows are
claimable, and ``dbtasks_ready_idx`` holds only them, keyed by (backend,
queue, run alone, priority, age): rows due later are SCHEDULED
(``dbtasks/sql/stage.py`` makes them READY when due), finished and running
rows are not in the index, and each queue the worker serves is its own
range of it (tasks to run alone, another). For a worker
serving several queues the statement reads the best ``limit`` rows of each
queue (one short index range each) and keeps the best ``limit`` of those,
so another queue's backlog is never walked::

    Postgres: unnest(queues) CROSS JOIN LATERAL (one queue's best rows
              ... FOR UPDATE SKIP LOCKED) ORDER BY ... LIMIT n
    SQLite:   (one queue's best rows) UNION ALL (the next queue's) ...
              ORDER BY ... LIMIT n

``now`` is a parameter: the caller decides whose clock it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper
from django.db.models import Case
from django.db.models import F
from django.db.models import OuterRef
from django.db.models import Subquery
from django.db.models import When

from dbtasks.models import READY
from dbtasks.models import RUNNING
from dbtasks.models import DBTaskAttempt
from dbtasks.models import DBTaskResult
from dbtasks.sql.build import column_of

# The claim's order, that of dbtasks_ready_idx after (backend, queue).
ORDER = "claim_priority DESC, available_after, id"


def claim(
    *,
    db: str,
    backend_name: str,
    queues: Sequence[str],
    worker_id: str,
    limit: int,
    now: datetime,
    alone: bool = False,
) -> list[DBTaskResult]:
    """Mark up to ``limit`` ready rows RUNNING for ``worker_id`` and return them.

    Order: highest ``claim_priority`` first (the task's priority, or 0 for
    a fair concurrency key's rows), then earliest ``available_after``, then
    id, across all of ``queues``. ``attempt_count`` counts this run.
    ``alone``: claim among the rows to run alone (``run_alone``) instead of
    the others (``dbtasks/worker/alone.py``).
    """
    if not queues or limit < 1:
        return []
    queues = list(dict.fromkeys(queues))  # a queue named twice is still one range
    connection = connections[db]
    at = connection.ops.adapt_datetimefield_value(now)
    if connection.vendor == "postgresql":
        chosen, chosen_params = best_rows_postgres(
            connection, backend_name, queues, limit, at, alone
        )
    else:
        chosen, chosen_params = best_rows_union(connection, backend_name, queues, limit, at, alone)
    return claim_chosen(db, (chosen, chosen_params), worker_id=worker_id, at=at)


def claim_chosen(
    db: str, chosen: tuple[str, list[Any]], *, worker_id: str, at: Any
) -> list[DBTaskResult]:
    """Mark the rows whose ids ``chosen`` (SQL, params) selects RUNNING; return them.

    ``at`` is the claim's time, adapted for the database: the attempt's start.
    """
    connection = connections[db]
    quote = connection.ops.quote_name
    table = quote(DBTaskResult._meta.db_table)
    columns = ", ".join(quote(column_of(field)) for field in DBTaskResult._meta.concrete_fields)
    chosen_sql, chosen_params = chosen
    sql = f"""
        UPDATE {table}
        SET status = %s,
            worker_id = %s,
            attempt_count = attempt_count + 1,
            started_at = COALESCE(started_at, %s),
            last_attempted_at = %s
        WHERE id IN ({chosen_sql})
        RETURNING {columns}
    """  # Only quoted names, placeholders and constants are interpolated.
    params = [RUNNING, worker_id, at, at, *chosen_params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = [DBTaskResult.from_db(db, FIELD_NAMES, values) for values in converted(cursor, db)]
    rows.sort(key=lambda row: (-row.claim_priority, row.available_after, row.pk))
    return rows


def one_queue(
    connection: BaseDatabaseWrapper,
    queue: tuple[str, list[Any]],
    backend_name: str,
    at: Any,
    alone: bool = False,
) -> tuple[str, list[Any]]:
    """The WHERE clause of one queue's claimable rows, and its parameters.

    ``queue`` is the SQL that names the queue and its parameters (a
    placeholder and the name, or a column of the list of queues). This is the
    place for any further per-queue or per-row condition of the claim: each
    one narrows one queue's index range, in either shape.

    READY and the empty rate key are written into the SQL, not bound:
    dbtasks_ready_idx is partial (WHERE rate_key = '' AND status = 'READY'),
    and a planner can only use it when it sees the values. With bound
    parameters, a prepared statement's generic plan (Postgres with
    server-side binding) falls back to a sequential scan.

    ``available_after <= now`` is a guard, not a filter that does work:
    READY rows are due (enqueue and staging make sure of it, each by its own
    clock), so it only holds back a row if this worker's clock runs behind.
    """
    table = connection.ops.quote_name(DBTaskResult._meta.db_table)
    queue_sql, queue_params = queue
    conditions: list[tuple[str, list[Any]]] = [
        (f"{table}.status = '{READY.value}'", []),
        # Rate-limited rows are claimed per key (dbtasks.sql.rate_limits).
        (f"{table}.rate_key = ''", []),
        (f"{table}.backend_name = %s", [backend_name]),
        (f"{table}.queue_name = {queue_sql}", queue_params),
        (f"{table}.run_alone = %s", [alone]),
        (f"{table}.available_after <= %s", [at]),
    ]
    sql = " AND ".join(condition for condition, _ in conditions)
    return sql, [param for _, params in conditions for param in params]


def best_rows_postgres(
    connection: BaseDatabaseWrapper,
    backend_name: str,
    queues: Sequence[str],
    limit: int,
    at: Any,
    alone: bool = False,
) -> tuple[str, list[Any]]:
    """The ids of the best ``limit`` rows across ``queues``, locked, skipping locked ones.

    The queues are one array parameter, so the statement (and a prepared
    plan) is the same for any number of them. Each queue's LATERAL subquery
    is one index range read in claim order, stopped after ``limit`` rows.
    """
    table = connection.ops.quote_name(DBTaskResult._meta.db_table)
    where, params = one_queue(connection, ("queues.name", []), backend_name, at, alone)
    sql = f"""
        SELECT best.id
        FROM unnest(%s::text[]) AS queues(name)
        CROSS JOIN LATERAL (
            SELECT id, claim_priority, available_after FROM {table}
            WHERE {where}
            ORDER BY {ORDER}
            LIMIT %s
            FOR UPDATE SKIP LOCKED
        ) AS best
        ORDER BY best.claim_priority DESC, best.available_after, best.id
        LIMIT %s
    """
    return sql, [list(queues), *params, limit, limit]


def best_rows_union(
    connection: BaseDatabaseWrapper,
    backend_name: str,
    queues: Sequence[str],
    limit: int,
    at: Any,
    alone: bool = False,
) -> tuple[str, list[Any]]:
    """The ids of the best ``limit`` rows across ``queues``: one index range per queue."""
    table = connection.ops.quote_name(DBTaskResult._meta.db_table)
    branches, params = [], []
    for queue in queues:
        where, where_params = one_queue(connection, ("%s", [queue]), backend_name, at, alone)
        branches.append(
            f"SELECT * FROM (SELECT id, claim_priority, available_after FROM {table} "
            f"WHERE {where} ORDER BY {ORDER} LIMIT %s)"
        )
        params += [*where_params, limit]
    sql = f"SELECT id FROM ({' UNION ALL '.join(branches)}) ORDER BY {ORDER} LIMIT %s"
    return sql, [*params, limit]


FIELD_NAMES = [field.attname for field in DBTaskResult._meta.concrete_fields]


def converted(cursor: CursorWrapper, db: str) -> Iterator[list[Any]]:
    """The cursor's rows (every column, in field order) as Python values.

    What ``QuerySet.raw()`` does, without its per-call column mapping: this
    runs once per claim, so once per task.
    """
    connection = connections[db]
    table = DBTaskResult._meta.db_table
    converters = []
    for index, field in enumerate(DBTaskResult._meta.concrete_fields):
        column = field.get_col(table)
        for converter in connection.ops.get_db_converters(column) + field.get_db_converters(
            connection
        ):
            converters.append((index, converter, column))
    for values in cursor.fetchall():
        values = list(values)
        for index, converter, column in converters:
            values[index] = converter(values[index], column, connection)
        yield values


def unclaim(row: DBTaskResult, *, worker_id: str) -> bool:
    """Undo ``claim()`` for a row that never started; return whether it was still ours.

    The row is READY again with the attempt uncounted, as if never claimed:
    ``started_at`` and ``last_attempted_at`` go back to what the earlier
    attempts (``DBTaskAttempt``, whose ``started_at`` each copied
    ``last_attempted_at``) say. SQL evaluates every SET expression against
    the row as it was, so ``attempt_count`` below is the claimed count.
    """
    earlier = DBTaskAttempt.objects.filter(result=OuterRef("pk")).order_by("-number")
    return bool(
        DBTaskResult.objects.using(row._state.db)
        .filter(pk=row.pk, status=RUNNING, worker_id=worker_id, attempt_count=row.attempt_count)
        .update(
            status=READY,
            worker_id="",
            attempt_count=F("attempt_count") - 1,
            started_at=Case(When(attempt_count=1, then=None), default=F("started_at")),
            last_attempted_at=Subquery(earlier.values("started_at")[:1]),
        )
    )
