"""The dashboard's workflow panel: how many are unfinished, and the latest few."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count
from django.db.models import Q

from dbtasks.backend import DatabaseBackend
from dbtasks.models import FAILED
from dbtasks.models import RUNNING
from dbtasks.models import SUCCESSFUL
from dbtasks.models import WAITING
from dbtasks.workflows.models import DBWorkflow
from dbtasks.workflows.models import DBWorkflowMember


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowInfo:
    """One workflow and its members counted by state."""

    id: int
    name: str
    created_at: datetime
    cancelled_at: datetime | None
    waiting: int
    running: int
    successful: int
    failed: int


def unfinished_workflows(backend: DatabaseBackend) -> int:
    """Workflows with a member not finished yet (uses dbtasks_member_unsettled_idx)."""
    unsettled = DBWorkflowMember.objects.using(backend.db_alias).filter(
        settled=False, workflow__backend_name=backend.alias
    )
    return unsettled.values("workflow_id").distinct().count()


def latest_workflows(backend: DatabaseBackend, *, limit: int = 5) -> list[WorkflowInfo]:
    """The ``limit`` newest workflows, their members counted by state (one query)."""
    rows = (
        DBWorkflow.objects.using(backend.db_alias)
        .filter(backend_name=backend.alias)
        .order_by("-id")
        .annotate(
            waiting=Count("members", filter=Q(members__result__status__in=WAITING)),
            running=Count("members", filter=Q(members__result__status=RUNNING)),
            successful=Count("members", filter=Q(members__result__status=SUCCESSFUL)),
            failed=Count("members", filter=Q(members__result__status=FAILED)),
        )
        .values(
            "id", "name", "created_at", "cancelled_at", "waiting", "running", "successful", "failed"
        )[:limit]
    )
    return [WorkflowInfo(**row) for row in rows]
