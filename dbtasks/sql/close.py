"""Step 5 of the tour: close an attempt, the row's new state and its ``DBTaskAttempt`` together.

The update is guarded by (status RUNNING, worker, attempt number): an attempt
that someone else has closed already (lost-worker recovery, a shutdown, a
purge) is left alone, and ``close_attempt()`` returns False.

On Postgres it is one statement: a data-modifying CTE whose INSERT only sees
the row the guarded UPDATE changed. A single statement is atomic on its own,
so a task costs two round trips (claim, close) instead of five (claim, BEGIN,
UPDATE, INSERT, COMMIT). SQLite cannot put an UPDATE in a CTE; there the two
statements share a transaction. Both are plain SQL built from the models'
fields (``dbtasks.sql.build``): this runs once per task.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connections
from django.db import router
from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from dbtasks.clock import database_time
from dbtasks.models import BLOCKED
from dbtasks.models import FINISHED
from dbtasks.models import RUNNING
from dbtasks.models import SCHEDULED
from dbtasks.models import DBTaskAttempt
from dbtasks.models import DBTaskResult
from dbtasks.sql import semaphores
from dbtasks.sql.build import column_of
from dbtasks.sql.build import concrete_field
from dbtasks.sql.build import insert_parts
from dbtasks.sql.build import mark_saved
from dbtasks.sql.transactions import heartbeat_timeout_of
from dbtasks.sql.transactions import one_writer
from dbtasks.sql.transactions import short_transaction
from dbtasks.workflows.release import member_finished


def close_attempt(
    row: DBTaskResult, *, worker_id: str, changes: Mapping[str, Any], attempt: DBTaskAttempt
) -> bool:
    """Apply ``changes`` to ``row`` and insert ``attempt`` if the attempt is still ours.

    A workflow member that finishes for good releases the members waiting on
    it in the same transaction (``dbtasks/workflows/release.py``). A task
    with a concurrency limit gives its slot back the same way, to the oldest
    task BLOCKED on its key (``dbtasks/sql/semaphores.py``).
    """
    db = row._state.db or router.db_for_write(DBTaskResult, instance=row)
    with one_writer(db):
        return _close(db, row, worker_id=worker_id, changes=changes, attempt=attempt)


def close_attempts(
    db: str,
    closes: Sequence[tuple[DBTaskResult, Mapping[str, Any], DBTaskAttempt]],
    *,
    worker_id: str,
) -> list[bool]:
    """``close_attempt()`` for each (row, changes, attempt), in one transaction; which were ours.

    For plain closes only: no workflow member, no concurrency limit (their
    closes have more to do, ``_close``). One commit for them all: on SQLite
    a transaction's BEGIN and COMMIT cost more than a close's two
    statements, on Postgres each commit waits for its WAL flush
    (``dbtasks/worker/batching.py``).
    """
    idle_limit = heartbeat_timeout_of(closes[0][0].backend_name) if closes else None
    with one_writer(db), short_transaction(db, idle_limit=idle_limit):
        return [
            write_close(row, worker_id=worker_id, changes=changes, attempt=attempt)
            for row, changes, attempt in closes
        ]


def _close(
    db: str,
    row: DBTaskResult,
    *,
    worker_id: str,
    changes: Mapping[str, Any],
    attempt: DBTaskAttempt,
) -> bool:
    releases_members = row.in_workflow and changes.get("status") in FINISHED
    limited = bool(row.concurrency_key)
    if not (releases_members or limited):
        return write_close(row, worker_id=worker_id, changes=changes, attempt=attempt)
    if limited and changes.get("status") == SCHEDULED:
        # A retry in its backoff waits without a slot; it takes one again when due.
        # (SCHEDULED: due later by the clock the worker closed the attempt with.)
        changes = {**changes, "status": BLOCKED}
    with short_transaction(db, idle_limit=heartbeat_timeout_of(row.backend_name)):
        closed = write_close(row, worker_id=worker_id, changes=changes, attempt=attempt)
        if closed and releases_members:
            member_finished(db, row.pk, attempt.stopped_at)
        if closed and limited:
            # The server's time, not this host's: it says which blocked rows are
            # due and when the one given the slot becomes available.
            give_back_slot(db, row, database_time(db))
    return closed


def give_back_slot(db: str, row: DBTaskResult, now: datetime) -> None:
    """Pass ``row``'s slot to the oldest due task BLOCKED on its key, or free it."""
    semaphores.give_back(db, row.backend_name, [row.concurrency_key], now)


def write_close(
    row: DBTaskResult, *, worker_id: str, changes: Mapping[str, Any], attempt: DBTaskAttempt
) -> bool:
    """The close itself: one statement on Postgres, one transaction on SQLite."""
    db = row._state.db or router.db_for_write(DBTaskResult, instance=row)
    connection = connections[db]
    update_sql, update_params = guarded_update(connection, row, worker_id, changes)
    columns, values, insert_params = insert_parts(connection, attempt)
    if connection.vendor == "postgresql":
        sql = f"""
            WITH closed AS ({update_sql} RETURNING id)
            INSERT INTO {columns} SELECT {values} FROM closed
            RETURNING id
        """  # Only quoted names and placeholders are interpolated.
        with connection.cursor() as cursor:
            cursor.execute(sql, [*update_params, *insert_params])
            inserted = cursor.fetchone()
        if inserted is None:
            return False
        mark_saved(attempt, pk=inserted[0], db=db)
    else:
        # No savepoint inside close_attempts()' transaction: it fails as a whole.
        with transaction.atomic(using=db, savepoint=False), connection.cursor() as cursor:
            cursor.execute(update_sql, update_params)
            if cursor.rowcount != 1:
                return False
            cursor.execute(f"INSERT INTO {columns} VALUES ({values})", insert_params)
            mark_saved(attempt, pk=cursor.lastrowid, db=db)
    return True


def guarded_update(
    connection: BaseDatabaseWrapper,
    row: DBTaskResult,
    worker_id: str,
    changes: Mapping[str, Any],
) -> tuple[str, list[Any]]:
    """The UPDATE that applies ``changes`` only if the attempt is still running for us."""
    quote = connection.ops.quote_name
    fields = [concrete_field(DBTaskResult, name) for name in changes]
    assignments = ", ".join(f"{quote(column_of(field))} = %s" for field in fields)
    # Values go through get_db_prep_save(), as in the ORM's own UPDATE.
    params = [field.get_db_prep_save(changes[field.name], connection) for field in fields]
    sql = (
        f"UPDATE {quote(DBTaskResult._meta.db_table)} SET {assignments} "
        "WHERE id = %s AND status = %s AND worker_id = %s AND attempt_count = %s"
    )
    return sql, [*params, row.pk, RUNNING, worker_id, row.attempt_count]
