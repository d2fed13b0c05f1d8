"""Step 3 of the tour: a worker claims READY rows, atomically.

One statement does it: an UPDATE that marks the best READY rows RUNNING for
this worker and returns them. On Postgres the inner SELECT takes row locks
with ``FOR UPDATE SKIP LOCKED``, so concurrent workers each get different
rows and never wait for one another. SQLite has no row locks; its single
writer lock serialises the statement (WAL plus a busy timeout make that
wait short instead of an error).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.db import connections

from dbtasks.models import READY
from dbtasks.models import RUNNING
from dbtasks.models import DBTaskResult


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
    columns = ", ".join(quote(field.column) for field in DBTaskResult._meta.concrete_fields)
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
    rows = list(DBTaskResult.objects.using(db).raw(sql, params))
    rows.sort(key=lambda row: (-row.priority, row.available_after, row.pk))
    return rows
