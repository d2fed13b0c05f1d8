"""Step 4 of the tour: a worker claims READY rows, atomically.

One statement does it: an UPDATE that marks the best READY rows RUNNING for
this worker and returns them. On Postgres the inner SELECT takes row locks
with ``FOR UPDATE SKIP LOCKED``, so concurrent workers each get different
rows and never wait for one another. SQLite has no row locks; its single
writer lock serialises the statement (WAL plus a busy timeout make that
wait short instead of an error).
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connections
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


def claim(
    *,
    db: str,
    backend_name: str,
    queues: Sequence[str],
    worker_id: str,
    limit: int,
    now: datetime,
) -> list[DBTaskResult]:
    """Mark up to ``limit`` ready rows RUNNING for ``worker_id`` and return them.

    Order: highest priority first, then earliest ``available_after``, then id
    (the order of ``dbtasks_ready_idx``). ``attempt_count`` counts this run.
    """
    if not queues or limit < 1:
        return []
    connection = connections[db]
    quote = connection.ops.quote_name
    table = quote(DBTaskResult._meta.db_table)
    columns = ", ".join(quote(column_of(field)) for field in DBTaskResult._meta.concrete_fields)
    skip_locked = (
        " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    )
    at = connection.ops.adapt_datetimefield_value(now)
    sql = f"""
        UPDATE {table}
        SET status = %s,
            worker_id = %s,
            attempt_count = attempt_count + 1,
            started_at = COALESCE(started_at, %s),
            last_attempted_at = %s
        WHERE id IN (
            SELECT id FROM {table}
            WHERE status = '{READY.value}'
              AND backend_name = %s
              AND queue_name IN ({", ".join(["%s"] * len(queues))})
              AND available_after <= %s
            ORDER BY priority DESC, available_after, id
            LIMIT %s{skip_locked}
        )
        RETURNING {columns}
    """  # Only quoted names, placeholders and the READY constant are interpolated above.
    # READY is written into the SQL, not bound: dbtasks_ready_idx is partial
    # (WHERE status = 'READY'), and a planner can only use it when it sees
    # the value. With a bound parameter, a prepared statement's generic plan
    # (Postgres with server-side binding) falls back to a sequential scan.
    params = [RUNNING, worker_id, at, at, backend_name, *queues, at, limit]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = [DBTaskResult.from_db(db, FIELD_NAMES, values) for values in converted(cursor, db)]
    rows.sort(key=lambda row: (-row.priority, row.available_after, row.pk))
    return rows


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
