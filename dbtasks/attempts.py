"""Close a running attempt: the row's new state and its ``DBTaskAttempt``, all or nothing.

The update is guarded by (status RUNNING, worker, attempt number): an attempt
that someone else has closed already (lost-worker recovery, a shutdown, a
purge) is left alone, and ``close_attempt()`` returns False.

On Postgres it is one statement: a data-modifying CTE whose INSERT only sees
the row the guarded UPDATE changed. A single statement is atomic on its own,
so a task costs two round trips (claim, close) instead of five (claim, BEGIN,
UPDATE, INSERT, COMMIT). SQLite cannot put an UPDATE in a CTE; there the two
statements share a transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import connections
from django.db import router
from django.db import transaction

from dbtasks.models import RUNNING
from dbtasks.models import DBTaskAttempt
from dbtasks.models import DBTaskResult


def close_attempt(
    row: DBTaskResult, *, worker_id: str, changes: Mapping[str, Any], attempt: DBTaskAttempt
) -> bool:
    """Apply ``changes`` to ``row`` and insert ``attempt`` if the attempt is still ours."""
    db = row._state.db or router.db_for_write(DBTaskResult, instance=row)
    if connections[db].vendor == "postgresql":
        attempt.pk = _close_in_one_statement(db, row, worker_id, changes, attempt)
        if attempt.pk is None:
            return False
        attempt._state.adding = False
        attempt._state.db = db
        return True
    with transaction.atomic(using=db):
        closed = (
            DBTaskResult.objects.using(db)
            .filter(pk=row.pk, status=RUNNING, worker_id=worker_id, attempt_count=row.attempt_count)
            .update(**changes)
        )
        if not closed:
            return False
        attempt.save(using=db, force_insert=True)
    return True


def _close_in_one_statement(
    db: str,
    row: DBTaskResult,
    worker_id: str,
    changes: Mapping[str, Any],
    attempt: DBTaskAttempt,
) -> int | None:
    """Run the guarded UPDATE and the INSERT as one statement; return the attempt's id."""
    connection = connections[db]
    quote = connection.ops.quote_name
    results = DBTaskResult._meta
    attempts = DBTaskAttempt._meta
    # Values go through get_db_prep_save(), as in the ORM's own UPDATE and INSERT.
    set_fields = [results.get_field(name) for name in changes]
    set_sql = ", ".join(f"{quote(field.column)} = %s" for field in set_fields)
    set_params = [field.get_db_prep_save(changes[field.name], connection) for field in set_fields]
    insert_fields = [field for field in attempts.concrete_fields if not field.primary_key]
    insert_columns = ", ".join(quote(field.column) for field in insert_fields)
    insert_params = [
        field.get_db_prep_save(field.pre_save(attempt, add=True), connection)
        for field in insert_fields
    ]
    sql = f"""
        WITH closed AS (
            UPDATE {quote(results.db_table)}
            SET {set_sql}
            WHERE id = %s AND status = %s AND worker_id = %s AND attempt_count = %s
            RETURNING id
        )
        INSERT INTO {quote(attempts.db_table)} ({insert_columns})
        SELECT {", ".join(["%s"] * len(insert_fields))} FROM closed
        RETURNING id
    """  # Only quoted names and placeholders are interpolated above.
    params = [
        *set_params,
        row.pk,
        RUNNING,
        worker_id,
        row.attempt_count,
        *insert_params,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        inserted = cursor.fetchone()
    return None if inserted is None else inserted[0]
