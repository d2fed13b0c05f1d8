"""Workflows run by a worker in this process: chains, groups with a callback, cancel."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.db import transaction
from django.utils import timezone

from dbtasks import workflows
from dbtasks.backend import DatabaseBackend
from dbtasks.compat import InvalidTask
from dbtasks.compat import TaskResultStatus
from dbtasks.compat import task_backends
from dbtasks.exceptions import InvalidTaskArguments
from dbtasks.exceptions import WorkflowDoesNotExist
from dbtasks.models import BLOCKED
from dbtasks.models import READY
from dbtasks.models import RUNNING
from dbtasks.models import DBTaskResult
from dbtasks.purge import purge_expired
from dbtasks.workflows.models import DBWorkflow
from tests import tasks
from tests.conftest import run_worker
from tests.testapp.models import TaskRun

SUCCESSFUL = TaskResultStatus.SUCCESSFUL
FAILED = TaskResultStatus.FAILED


def statuses(run) -> list[str]:
    return [member.status for member in workflows.members(run.id)]


def test_a_chain_passes_each_return_value_to_the_next_step(transactional_db):
    run = workflows.chain(
        workflows.call(tasks.add, 1, 2),
        workflows.call(tasks.add, 10),
        workflows.call(tasks.add, amount=100),
    ).enqueue()

    # Only the first step is claimable; the others wait, reading READY publicly.
    assert statuses(run) == [READY, BLOCKED, BLOCKED]
    assert [result.status for result in run.results] == [TaskResultStatus.READY] * 3
    run_worker()

    run = run.refresh()
    assert [result.status for result in run.results] == [SUCCESSFUL] * 3
    assert [result.return_value for result in run.results] == [3, 13, 113]
    # The value a step received is in its arguments, for everyone to see.
    assert run.results[1].args == [3, 10]
    assert run.results[2].args == [13]
    assert run.results[2].kwargs == {"amount": 100}
    assert run.last.return_value == 113
    assert run.status == SUCCESSFUL
    assert tasks.add.get_result(run.last.id).return_value == 113


def test_a_failed_step_fails_the_rest_of_the_chain_naming_it(transactional_db):
    run = workflows.chain(
        workflows.call(tasks.always_fails, "no such channel"),
        workflows.call(tasks.record_run),
        workflows.call(tasks.record_run),
    ).enqueue()
    run_worker()

    first, second, third = run.refresh().results
    assert first.status == FAILED
    assert first.attempts == 3  # the retry policy ran its course first
    for later in (second, third):
        assert later.status == FAILED
        assert later.attempts == 0  # never ran
        [error] = later.errors
        assert error.exception_class_path == "dbtasks.exceptions.TaskCancelled"
    assert f"step {first.id} (tests.tasks.always_fails)" in second.errors[0].traceback
    assert "ValueError: no such channel" in second.errors[0].traceback
    assert f"step {second.id} (tests.tasks.record_run)" in third.errors[0].traceback
    assert not TaskRun.objects.exists()
    assert run.refresh().status == FAILED


def test_a_group_callback_receives_every_outcome_once(transactional_db):
    run = workflows.group(
        [
            workflows.call(tasks.echo, "a"),
            workflows.call(tasks.fails_permanently),
            workflows.call(tasks.echo, "c"),
        ],
        then=workflows.call(tasks.tally, "report"),
    ).enqueue()

    def shape(members):
        return [(m.id, m.status, m.receives, m.waits_on, m.waiting_for) for m in members]

    # What enqueue() returns is what reading it back gives.
    assert shape(run.members) == shape(workflows.members(run.id))
    callback = workflows.members(run.id)[-1]
    assert callback.status == BLOCKED
    assert callback.receives == "outcomes"
    assert callback.waits_on == [result.id for result in run.results[:3]]
    assert callback.waiting_for == 3

    run_worker()

    run = run.refresh()
    a, failed, c, report = run.results
    assert report.status == SUCCESSFUL
    assert report.return_value == {"SUCCESSFUL": [a.id, c.id], "FAILED": [failed.id]}
    outcomes = report.args[0]
    assert [outcome["id"] for outcome in outcomes] == [a.id, failed.id, c.id]
    assert outcomes[0]["return_value"] == {"args": ["a"], "kwargs": {}}
    assert outcomes[1]["return_value"] is None
    assert outcomes[1]["exception_class_path"] == "dbtasks.exceptions.PermanentFailure"
    assert outcomes[1]["error"] == "dbtasks.exceptions.PermanentFailure: retrying cannot help"
    assert report.args[1:] == ["report"]
    assert TaskRun.objects.filter(key="report").count() == 1
    assert workflows.members(run.id)[-1].waiting_for == 0
    # The last members decide the workflow's status: the callback succeeded.
    assert run.status == SUCCESSFUL


def test_chains_inside_a_group_and_a_step_after_the_callback(transactional_db):
    run = workflows.chain(
        workflows.call(tasks.add, 1, 1),
        workflows.group(
            [
                workflows.call(tasks.add, 10),
                workflows.chain(workflows.call(tasks.add, 5), tasks.echo),
            ],
            then=workflows.call(tasks.tally, "middle"),
        ),
        tasks.echo,  # a bare task: called with the previous step's return value alone
    ).enqueue()
    assert [len(member.waits_on) for member in workflows.members(run.id)] == [0, 1, 1, 1, 2, 1]
    run_worker()

    results = run.refresh().results
    assert [result.status for result in results] == [SUCCESSFUL] * 6
    assert [result.return_value for result in results[:3]] == [2, 12, 7]
    assert results[3].return_value == {"args": [7], "kwargs": {}}
    tally = {"SUCCESSFUL": [results[1].id, results[3].id]}
    assert results[4].return_value == tally
    assert results[5].return_value == {"args": [tally], "kwargs": {}}


def test_building_refuses_what_is_not_a_task():
    with pytest.raises(TypeError, match="must be a task"):
        workflows.chain(tasks.add, 3)  # type: ignore[arg-type]  # the mistake under test
    with pytest.raises(ValueError, match="at least one"):
        workflows.group([], then=tasks.noop)
    with pytest.raises(ValueError, match="at least one"):
        workflows.chain()


def test_a_workflow_is_written_whole_or_not_at_all(transactional_db):
    with pytest.raises(InvalidTaskArguments):
        workflows.group(
            [workflows.call(tasks.echo, 1), workflows.call(tasks.echo, object())],
            then=tasks.noop,
        ).enqueue()
    assert not DBTaskResult.objects.exists()
    assert not DBWorkflow.objects.exists()

    # Inside the caller's transaction: rolled back with it.
    class CallerFailed(Exception):
        pass

    def enqueue_then_fail() -> None:
        with transaction.atomic():
            workflows.chain(tasks.noop, tasks.noop).enqueue()
            assert DBTaskResult.objects.count() == 2
            raise CallerFailed

    with pytest.raises(CallerFailed):
        enqueue_then_fail()
    assert not DBTaskResult.objects.exists()
    assert not DBWorkflow.objects.exists()


def test_members_must_share_a_dbtasks_backend():
    with pytest.raises(InvalidTask, match="DatabaseBackend"):
        workflows.chain(tasks.noop, tasks.noop.using(backend="immediate")).enqueue()


def test_cancelling_a_workflow_cancels_what_has_not_started(transactional_db):
    run = workflows.group(
        [workflows.call(tasks.record_run, "one"), workflows.call(tasks.record_run, "two")],
        then=workflows.call(tasks.tally, "never"),
    ).enqueue()
    # One member finished already: it stays as it is.
    DBTaskResult.objects.filter(pk=run.results[0].id).update(status=SUCCESSFUL)

    assert workflows.cancel(run.id) == 2
    run_worker()

    run = run.refresh()
    assert run.cancelled_at is not None
    assert [result.status for result in run.results] == [SUCCESSFUL, FAILED, FAILED]
    for result in run.results[1:]:
        assert result.attempts == 0
        assert f"workflow {run.id} was cancelled" in result.errors[0].traceback
    assert not TaskRun.objects.exists()
    assert workflows.cancel(run.id) == 0


def test_cancelling_one_member_counts_as_its_finish(transactional_db):
    run = workflows.group(
        [workflows.call(tasks.echo, 1), workflows.call(tasks.echo, 2)],
        then=workflows.call(tasks.tally, "after-cancel"),
    ).enqueue()
    backend = task_backends["default"]
    assert isinstance(backend, DatabaseBackend)
    assert backend.cancel(run.results[1].id) is True
    run_worker()

    one, cancelled, report = run.refresh().results
    assert report.status == SUCCESSFUL
    assert report.return_value == {"SUCCESSFUL": [one.id], "FAILED": [cancelled.id]}
    assert report.args[0][1]["exception_class_path"] == "dbtasks.exceptions.TaskCancelled"
    # A blocked member may be cancelled too: what waits on it is cancelled with it.
    chained = workflows.chain(tasks.noop, tasks.noop, tasks.noop).enqueue()
    assert backend.cancel(chained.results[1].id) is True
    assert backend.cancel(chained.results[0].id) is True
    assert [result.status for result in chained.refresh().results] == [FAILED] * 3


def test_unknown_workflows_raise_does_not_exist(db):
    for bad in ["0", "abc", "999999", "-1"]:
        with pytest.raises(WorkflowDoesNotExist):
            workflows.members(bad)
        with pytest.raises(WorkflowDoesNotExist):
            workflows.cancel(bad)


def test_cancelling_asks_running_members_to_stop_and_nothing_after_them_runs(transactional_db):
    run = workflows.chain(tasks.noop, tasks.record_run).enqueue()
    first, second = run.results
    DBTaskResult.objects.filter(pk=first.id).update(status=RUNNING, worker_id="w:1:x")

    assert workflows.cancel(run.id) == 1

    row = DBTaskResult.objects.get(pk=first.id)
    assert row.status == RUNNING  # its worker ends its attempt
    assert row.cancel_requested_at is not None  # and is asked to, at its next heartbeat
    assert tasks.record_run.get_result(second.id).status == FAILED


def test_purging_a_workflows_last_task_purges_the_workflow(db):
    kept = workflows.chain(tasks.noop, tasks.noop).enqueue()
    gone = workflows.chain(tasks.noop, tasks.noop).enqueue()
    backend = task_backends["default"]
    assert isinstance(backend, DatabaseBackend)
    old = timezone.now() - timedelta(days=30)
    DBTaskResult.objects.filter(pk__in=[r.id for r in gone.results]).update(
        status=SUCCESSFUL, finished_at=old
    )
    DBTaskResult.objects.filter(pk=kept.results[0].id).update(status=SUCCESSFUL, finished_at=old)

    assert purge_expired(backend, now=timezone.now()) == {"finished": 3, "unfinished": 0}

    assert list(DBWorkflow.objects.values_list("pk", flat=True)) == [int(kept.id)]
    assert [member.id for member in workflows.members(kept.id)] == [kept.results[1].id]
    with pytest.raises(WorkflowDoesNotExist):
        workflows.get(gone.id)


def test_async_code_enqueues_with_aenqueue(transactional_db):
    group = workflows.group([workflows.call(tasks.echo, 1)], then=tasks.noop)

    async def enqueue():
        try:
            return await group.aenqueue(name="from async")
        finally:
            # The ORM ran in sync_to_async's thread: close that thread's connection.
            await sync_to_async(connections.close_all)()

    run = asyncio.run(enqueue())

    assert workflows.get(run.id).name == "from async"
    assert [member.status for member in workflows.members(run.id)] == [READY, BLOCKED]
