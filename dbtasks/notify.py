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


def insert_and_notify(row: DBTaskResult, *, db: str, channel: str, payload: str) -> None:
    """Save the new ``row`` to ``db`` and send ``NOTIFY channel, payload``; set its pk."""
    connection = connections[db]
    quote = connection.ops.quote_name
    fields = [field for field in DBTaskResult._meta.concrete_fields if not field.primary_key]
    columns = ", ".join(quote(field.column) for field in fields)
    # Values go through pre_save() and get_db_prep_save(), as in the ORM's own INSERT.
    values = [field.get_db_prep_save(field.pre_save(row, add=True), connection) for field in fields]
    sql = f"""
        WITH inserted AS (
            INSERT INTO {quote(DBTaskResult._meta.db_table)} ({columns})
            VALUES ({", ".join(["%s"] * len(fields))})
            RETURNING id
        )
        SELECT id, pg_notify(%s, %s) FROM inserted
    """  # Only quoted names and placeholders are interpolated.
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values, channel, payload])
        (row.pk, _) = cursor.fetchone()
    row._state.adding = False
    row._state.db = db
