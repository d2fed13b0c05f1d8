"""Read a workflow back, from any process: its members, their results, what each waits on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dbtasks.backend import parse_result_id
from dbtasks.compat import TaskResult
from dbtasks.compat import TaskResultStatus
from dbtasks.exceptions import WorkflowDoesNotExist
from dbtasks.models import DBTaskAttempt
from dbtasks.workflows.models import DBWorkflow
from dbtasks.workflows.models import DBWorkflowMember


@dataclass(frozen=True)
class Member:
    """One task of a workflow, as it stands."""

    position: int
    result: TaskResult[Any, Any]
    # dbtasks' own status: BLOCKED while it waits on others (``result.status`` reads READY).
    status: str
    receives: str  # "nothing", "value" (a chain step) or "outcomes" (a group's callback)
    waits_on: list[str]  # the result ids of the members it waits on
    waiting_for: int  # how many of those have not finished yet

    @property
    def id(self) -> str:
        return self.result.id


@dataclass(frozen=True)
class WorkflowResult:
    """A workflow and its members, read when it was built (``refresh()`` reads again)."""

    id: str
    name: str
    backend: str
    created_at: datetime
    cancelled_at: datetime | None
    members: list[Member]

    @property
    def results(self) -> list[TaskResult[Any, Any]]:
        """Every member's ``TaskResult``, in the order the workflow lists them."""
        return [member.result for member in self.members]

    @property
    def last(self) -> TaskResult[Any, Any]:
        """The last member: a chain's last step, a group's callback."""
        return self.members[-1].result

    @property
    def is_finished(self) -> bool:
        return all(member.result.is_finished for member in self.members)

    @property
    def status(self) -> TaskResultStatus:
        """READY until a member starts, RUNNING until all finish, then as its last members ended."""
        statuses = {member.result.status for member in self.members}
        if statuses == {TaskResultStatus.READY}:
            return TaskResultStatus.READY
        if not self.is_finished:
            return TaskResultStatus.RUNNING
        waited_on = {pk for member in self.members for pk in member.waits_on}
        ends = [member for member in self.members if member.id not in waited_on]
        if all(member.result.status == TaskResultStatus.SUCCESSFUL for member in ends):
            return TaskResultStatus.SUCCESSFUL
        return TaskResultStatus.FAILED

    def refresh(self) -> WorkflowResult:
        """Read the workflow again; return the new state."""
        return get(self.id)

    @classmethod
    def load(cls, workflow_id: str) -> WorkflowResult:
        pk = parse_result_id(workflow_id)
        workflow = DBWorkflow.objects.filter(pk=pk).first() if pk is not None else None
        if workflow is None:
            raise WorkflowDoesNotExist(f"No workflow has id {workflow_id!r}.")
        db = workflow._state.db
        rows = list(
            DBWorkflowMember.objects.using(db)
            .filter(workflow=workflow)
            .select_related("result")
            .order_by("position")
        )
        histories: dict[int, list[DBTaskAttempt]] = {}
        for attempt in DBTaskAttempt.objects.using(db).filter(result__in=[m.result for m in rows]):
            histories.setdefault(attempt.result_id, []).append(attempt)
        members = [
            Member(
                position=row.position,
                result=row.result.to_task_result(history=histories.get(row.result_id, [])),
                status=row.result.status,
                receives=row.receives,
                waits_on=[str(pk) for pk in row.waits_on],
                waiting_for=row.waiting_for,
            )
            for row in rows
        ]
        return cls(
            id=str(workflow.pk),
            name=workflow.name,
            backend=workflow.backend_name,
            created_at=workflow.created_at,
            cancelled_at=workflow.cancelled_at,
            members=members,
        )


def get(workflow_id: str) -> WorkflowResult:
    """The workflow with this id; raise ``WorkflowDoesNotExist`` if there is none."""
    return WorkflowResult.load(workflow_id)


def members(workflow_id: str) -> list[Member]:
    """The workflow's members in order, each with its result and what it waits on."""
    return get(workflow_id).members
