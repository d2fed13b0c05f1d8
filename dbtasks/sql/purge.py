"""Step 9 of the tour: the DELETE statements that purge old results.

``dbtasks.purge.purge_expired()`` calls them for the worker, the recurring
task and ``manage.py dbtasks_purge``. Deletes go in batches so a large purge
never holds a long lock.
"""

from __future__ import annotations

from datetime import datetime
from datetime import timedelta
from typing import Literal

from django.db.models import Exists
from django.db.models import OuterRef

from dbtasks.models import DBTaskResult
from dbtasks.models import DBTaskResultQuerySet
from dbtasks.sql.transactions import heartbeat_timeout_of
from dbtasks.sql.transactions import short_transaction
from dbtasks.workflows.models import DBWorkflow
from dbtasks.workflows.models import DBWorkflowMember


def delete_in_batches(
    rows: DBTaskResultQuerySet,
    *,
    batch_size: int,
    limit: int | None = None,
    idle_limit: timedelta | None = None,
) -> int:
    """Delete the rows (and their attempts) ``batch_size`` at a time; return how many."""
    deleted = 0
    while limit is None or deleted < limit:
        size = batch_size if limit is None else min(batch_size, limit - deleted)
        with short_transaction(rows.db, idle_limit=idle_limit):
            ids = list(rows.order_by().values_list("pk", flat=True)[:size])
            if not ids:
                break
            DBTaskResult.objects.using(rows.db).filter(pk__in=ids).delete()
        deleted += len(ids)
    return deleted


# What purge deletes, and the time each kind is aged by.
Kind = Literal["finished", "unfinished"]
_OLDER_THAN = {
    # SUCCESSFUL and FAILED rows, by finish time (dbtasks_finished_idx).
    "finished": DBTaskResultQuerySet.finished_before,
    # Rows never finished, by enqueue time (dbtasks_unfinished_idx).
    "unfinished": DBTaskResultQuerySet.unfinished_before,
}


def purge_older(
    kind: Kind,
    *,
    db: str,
    backend_name: str,
    before: datetime,
    batch_size: int = 1000,
    limit: int | None = None,
) -> int:
    """Delete ``kind`` results (see ``_OLDER_THAN``) older than ``before``; return how many."""
    rows = _OLDER_THAN[kind](
        DBTaskResult.objects.using(db).filter(backend_name=backend_name), before
    )
    idle_limit = heartbeat_timeout_of(backend_name)
    return delete_in_batches(rows, batch_size=batch_size, limit=limit, idle_limit=idle_limit)


def purge_empty_workflows(*, db: str, backend_name: str, batch_size: int = 1000) -> int:
    """Delete workflows whose every member has been purged; return how many.

    A member's row goes with its task's (``on_delete=CASCADE``); the
    workflow row itself goes once none is left.
    """
    empty = DBWorkflow.objects.using(db).filter(
        ~Exists(DBWorkflowMember.objects.filter(workflow=OuterRef("pk"))),
        backend_name=backend_name,
    )
    deleted = 0
    while ids := list(empty.values_list("pk", flat=True)[:batch_size]):
        DBWorkflow.objects.using(db).filter(pk__in=ids).delete()
        deleted += len(ids)
    return deleted
