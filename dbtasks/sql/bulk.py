"""One INSERT for many rows of one task: what ``enqueue_many()`` writes.

The rows of one call differ only in their arguments, so the statement binds
every other column once and the arguments as one JSON array, which the
database unrolls (Postgres: ``jsonb_array_elements``; SQLite:
``json_each``), in order::

    INSERT INTO ... (<columns>, arguments)
    SELECT %s, ..., %s, element.value FROM <the array's elements> ORDER BY position
    RETURNING id

Its cost per row is the database's own; the ORM's ``bulk_create()`` spends
more than that building one placeholder per column per row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from django.db import connections

from dbtasks.models import DBTaskResult
from dbtasks.sql.build import column_of
from dbtasks.sql.build import mark_saved


def insert_many(template: DBTaskResult, rows: Sequence[DBTaskResult], *, db: str) -> None:
    """Insert the new ``rows`` in one statement, and set their pks.

    Every column but the arguments is written as ``template`` has it: the
    rows are copies of it (``rows.copy_row``) with arguments of their own.
    """
    connection = connections[db]
    quote = connection.ops.quote_name
    meta = DBTaskResult._meta
    shared = [f for f in meta.concrete_fields if not f.primary_key and f.name != "arguments"]
    params = [f.get_db_prep_save(f.pre_save(template, add=True), connection) for f in shared]
    columns = ", ".join(quote(column_of(f)) for f in [*shared, meta.get_field("arguments")])
    values = ", ".join(["%s"] * len(shared))
    if connection.vendor == "postgresql":
        elements = "jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS element(value, position)"
        order = "element.position"
    else:
        elements = "json_each(%s) AS element"
        order = "element.key"  # json_each() numbers an array's elements in ``key``
    sql = f"""
        INSERT INTO {quote(meta.db_table)} ({columns})
        SELECT {values}, element.value FROM {elements}
        ORDER BY {order}
        RETURNING id
    """  # Only quoted names and placeholders are interpolated.
    payload = json.dumps([row.arguments for row in rows], allow_nan=False)
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, payload])
        # Ids come from a sequence, in the order the rows were inserted:
        # sorted, they line up with ``rows``.
        ids = sorted(pk for (pk,) in cursor.fetchall())
    if len(ids) != len(rows):
        raise RuntimeError(f"Inserted {len(ids)} rows for {len(rows)} tasks.")
    for row, pk in zip(rows, ids, strict=True):
        mark_saved(row, pk=pk, db=db)
