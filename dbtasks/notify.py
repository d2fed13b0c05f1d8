"""Insert a task's row and wake idle workers, in one statement (Postgres).

``NOTIFY`` is transactional: Postgres delivers it when the enqueueing
transaction commits, and never if it rolls back, so a woken worker always
finds the row. Sent as its own ``SELECT pg_notify(...)`` it would cost each
enqueue a second round trip; a data-modifying CTE carries both::

    WITH inserted AS (INSERT INTO ... VALUES (...) RETURNING id)
    SELECT id, pg_notify('dbtasks', <queue>) FROM inserted

``dbtasks.listener`` is the other end.
"""

from __future__ import annotations

from django.db import connections

from dbtasks.models import DBTaskResult
from dbtasks.statements import insert_parts
from dbtasks.statements import mark_saved


def insert_and_notify(row: DBTaskResult, *, db: str, channel: str, payload: str) -> None:
    """Save the new ``row`` to ``db`` and send ``NOTIFY channel, payload``; set its pk."""
    connection = connections[db]
    columns, values, params = insert_parts(connection, row)
    sql = f"""
        WITH inserted AS (INSERT INTO {columns} VALUES ({values}) RETURNING id)
        SELECT id, pg_notify(%s, %s) FROM inserted
    """  # Only quoted names and placeholders are interpolated.
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, channel, payload])
        (pk, _) = cursor.fetchone()
    mark_saved(row, pk=pk, db=db)
