"""Cancel a workflow: its unstarted members end cancelled; running ones are asked to stop.

Members that have not started (READY or BLOCKED) end FAILED with a
``TaskCancelled`` error saying the workflow was cancelled, in one
transaction, so nothing waiting on them is ever released. A member already
RUNNING gets its backend's ``cancel()``, after that transaction: where the
backend can stop a running task it asks it to; otherwise the attempt runs
to its end. Either way what waits on it was cancelled with the rest, so its
finish releases nothing.
"""

from __future__ import annotations

import logging

from django.db import router
from django.db import transaction

from dbtasks.backend import DatabaseBackend
from dbtasks.backend import parse_result_id
from dbtasks.clock import database_time
from dbtasks.compat import task_backends
from dbtasks.exceptions import WorkflowDoesNotExist
from dbtasks.models import FAILED
from dbtasks.models import RUNNING
from dbtasks.models import WAITING
from dbtasks.models import DBTaskResult
from dbtasks.workflows.models import DBWorkflow
from dbtasks.workflows.models import DBWorkflowMember

logger = logging.getLogger(__name__)


def cancel(workflow_id: str) -> int:
    """Cancel every member of the workflow that has not started; return how many."""
    pk = parse_result_id(workflow_id)
    workflow = DBWorkflow.objects.filter(pk=pk).first() if pk is not None else None
    if workflow is None:
        raise WorkflowDoesNotExist(f"No workflow has id {workflow_id!r}.")
    db = workflow._state.db or router.db_for_write(DBWorkflow)
    now = database_time(db)
    with transaction.atomic(using=db):
        # Member rows first, in id order, as every finish locks them (release.py).
        ids = list(
            DBWorkflowMember.objects.using(db)
            .filter(workflow=workflow)
            .select_for_update()
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        DBWorkflow.objects.using(db).filter(pk=workflow.pk).update(cancelled_at=now)
        tasks = DBTaskResult.objects.using(db)
        waiting = sorted(
            tasks.filter(pk__in=ids, status__in=WAITING)
            .select_for_update()
            .values_list("pk", flat=True)
        )
        cancelled = tasks.filter(pk__in=waiting).update(
            status=FAILED,
            finished_at=now,
            cancelled_at=now,
            cancel_reason=f"workflow {workflow.pk} was cancelled",
            worker_id="",
        )
        # Everything that waited on them is cancelled too: nothing to release.
        DBWorkflowMember.objects.using(db).filter(pk__in=waiting).update(settled=True)
        running = list(tasks.filter(pk__in=ids, status=RUNNING).values_list("pk", "backend_name"))
    for result_id, backend_name in running:
        backend = task_backends[backend_name]
        if isinstance(backend, DatabaseBackend):
            backend.cancel(str(result_id))
    if running:
        logger.info(
            "Workflow %s cancelled: %d task(s) not started cancelled, %d running asked to stop",
            workflow.pk,
            cancelled,
            len(running),
        )
    return cancelled
