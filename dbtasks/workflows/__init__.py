"""Workflows: chains, groups and chords of ordinary tasks, durable in the database.

Build one from ``@task``s and their arguments, then enqueue it whole::

    from dbtasks import workflows

    run = workflows.chain(
        workflows.call(fetch, url),
        workflows.call(parse),  # called as parse(<fetch's return value>)
    ).enqueue()

    run = workflows.group(
        [workflows.call(send.using(queue_name="push"), channel) for channel in channels],
        then=workflows.call(report, notification.pk),  # report(<outcomes>, notification.pk)
    ).enqueue()

- ``building``: ``call``, ``chain``, ``group`` (no database);
- ``enqueueing``: the whole workflow in one transaction;
- ``release``: what happens in the worker when a member finishes;
- ``reading`` and ``cancelling``: ``get``, ``members``, ``cancel``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dbtasks.exceptions import WorkflowDoesNotExist
from dbtasks.workflows.building import Call
from dbtasks.workflows.building import Chain
from dbtasks.workflows.building import Group
from dbtasks.workflows.building import call
from dbtasks.workflows.building import chain
from dbtasks.workflows.building import group

if TYPE_CHECKING:
    from dbtasks.workflows.reading import Member
    from dbtasks.workflows.reading import WorkflowResult


def get(workflow_id: str) -> WorkflowResult:
    """The workflow with this id, read now; raise ``WorkflowDoesNotExist`` if none."""
    from dbtasks.workflows.reading import get

    return get(workflow_id)


def members(workflow_id: str) -> list[Member]:
    """The workflow's members in order: each one's ``TaskResult`` and what it waits on."""
    return get(workflow_id).members


def cancel(workflow_id: str) -> int:
    """Cancel the workflow's members that have not started; return how many.

    Running members are asked to stop through their backend's ``cancel()``.
    """
    from dbtasks.workflows.cancelling import cancel

    return cancel(workflow_id)


__all__ = [
    "Call",
    "Chain",
    "Group",
    "WorkflowDoesNotExist",
    "call",
    "cancel",
    "chain",
    "get",
    "group",
    "members",
]
