"""Write a whole workflow in the caller's transaction: it exists entirely or not at all.

Each member is enqueued the ordinary way (``task.enqueue()``: validation,
JSON checks, ``task_enqueued``), inside one ``transaction.atomic()``; then
the members that wait on others are made BLOCKED (not claimable, invisible
to the claim's index) and the workflow's own rows are added. Nothing is
visible to workers before the transaction commits, so no member can start
early; if anything fails, nothing is written.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from dbtasks.backend import DatabaseBackend
from dbtasks.clock import database_time
from dbtasks.compat import InvalidTask
from dbtasks.compat import TaskResult
from dbtasks.models import BLOCKED
from dbtasks.models import READY
from dbtasks.models import DBTaskResult
from dbtasks.sql import semaphores
from dbtasks.workflows.building import Planned
from dbtasks.workflows.models import DBWorkflow
from dbtasks.workflows.models import DBWorkflowMember
from dbtasks.workflows.reading import Member
from dbtasks.workflows.reading import WorkflowResult


def backend_of(members: list[Planned]) -> DatabaseBackend:
    """The members' backend; all must be dbtasks backends on one database."""
    backends: set[DatabaseBackend] = set()
    for member in members:
        backend = member.call.task.get_backend()
        if not isinstance(backend, DatabaseBackend):
            raise InvalidTask(
                f"Workflow members must use a dbtasks DatabaseBackend; "
                f"{backend.alias!r} is a {type(backend).__name__}."
            )
        backends.add(backend)
    databases = {backend.db_alias for backend in backends}
    if len(databases) > 1:
        raise InvalidTask(
            f"Workflow members must share one database; their backends use {sorted(databases)}."
        )
    return next(iter(sorted(backends, key=lambda backend: backend.alias)))


def enqueue(members: list[Planned], *, name: str) -> WorkflowResult:
    """Write the workflow and its members in one transaction; return it."""
    backend = backend_of(members)
    db = backend.db_alias
    with transaction.atomic(using=db):
        now = database_time(db)  # the server's time, as enqueue() writes
        workflow = DBWorkflow.objects.using(db).create(
            backend_name=backend.alias, name=name, created_at=now
        )
        results: list[TaskResult[Any, Any]] = [
            member.call.task.enqueue(*member.call.args, **member.call.kwargs) for member in members
        ]
        ids = [int(result.id) for result in results]
        tasks = DBTaskResult.objects.using(db)
        tasks.filter(pk__in=ids).update(in_workflow=True)
        waiting = tasks.filter(pk__in=[ids[m.position] for m in members if m.waits_on])
        waiting.update(status=BLOCKED)
        dependants: dict[int, list[int]] = {}
        for member in members:
            for position in member.waits_on:
                dependants.setdefault(position, []).append(ids[member.position])
        rows = DBWorkflowMember.objects.using(db).bulk_create(
            DBWorkflowMember(
                result_id=ids[member.position],
                workflow=workflow,
                position=member.position,
                receives=member.receives,
                waits_on=[ids[position] for position in member.waits_on],
                dependants=dependants.get(member.position, []),
                waiting_for=len(member.waits_on),
            )
            for member in members
        )
        # A waiting member that took a concurrency slot as it was enqueued
        # gives it back: it asks for one again when it is released.
        limited = waiting.exclude(concurrency_key="").values_list("backend_name", "concurrency_key")
        for backend_name, key in set(limited):
            semaphores.give_back(db, backend_name, [key], now)
    # As written: no need to read it back.
    return WorkflowResult(
        id=str(workflow.pk),
        name=workflow.name,
        backend=workflow.backend_name,
        created_at=workflow.created_at,
        cancelled_at=None,
        members=[
            Member(
                position=row.position,
                result=result,
                status=BLOCKED if row.waits_on else READY,
                receives=row.receives,
                waits_on=[str(pk) for pk in row.waits_on],
                waiting_for=row.waiting_for,
            )
            for row, result in zip(rows, results, strict=True)
        ],
    )
