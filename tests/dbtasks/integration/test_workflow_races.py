"""Exactly once: a callback is released once, however its members' finishes race.

Members are claimed here as if by several workers, then their attempts are
closed the way workers and lost-worker recovery close them.
"""

from __future__ import annotations

from django.utils import timezone

from dbtasks import workflows
from dbtasks.backend import DatabaseBackend
from dbtasks.compat import TaskResultStatus
from dbtasks.compat import task_backends
from dbtasks.exceptions import WorkerLost
from dbtasks.models import BLOCKED
from dbtasks.models import READY
from dbtasks.models import DBTaskResult
from dbtasks.sql.claim import claim
from dbtasks.worker.outcomes import record_attempt
from tests import tasks
from tests.dbtasks.helpers import race

MEMBERS = 6


def chord(key: str = "report"):
    return workflows.group(
        [workflows.call(tasks.echo, n) for n in range(MEMBERS)],
        then=workflows.call(tasks.tally, key),
    ).enqueue()


def claim_each(count: int) -> list[DBTaskResult]:
    """Claim ``count`` ready rows, each for a different worker."""
    rows = []
    for n in range(count):
        rows += claim(
            db="default",
            backend_name="default",
            queues=["default"],
            worker_id=f"w{n}:{n}:x",
            limit=1,
            now=timezone.now(),
        )
    return rows


def close(row: DBTaskResult, **outcome) -> bool:
    backend = task_backends["default"]
    assert isinstance(backend, DatabaseBackend)
    policy = backend.config.policy(row.queue_name)
    closed = record_attempt(
        row, worker_id=row.worker_id, policy=policy, now=timezone.now(), **outcome
    )
    return closed is not None


def callback_of(run) -> DBTaskResult:
    return DBTaskResult.objects.get(pk=run.last.id)


def test_members_finishing_at_once_on_different_workers_release_the_callback_once(
    transactional_db,
):
    run = chord()
    rows = claim_each(MEMBERS)
    assert len(rows) == MEMBERS  # the callback, BLOCKED, was never claimable
    assert callback_of(run).status == BLOCKED

    pending = list(rows)
    closed = race(lambda: close(pending.pop(), return_value="done"), threads=MEMBERS)

    assert closed == [True] * MEMBERS
    callback = callback_of(run)
    assert callback.status == READY
    outcomes = callback.args[0]
    assert sorted(outcome["id"] for outcome in outcomes) == sorted(str(r.pk) for r in rows)
    assert {outcome["status"] for outcome in outcomes} == {"SUCCESSFUL"}
    assert workflows.members(run.id)[-1].waiting_for == 0


def test_an_attempt_closed_twice_is_counted_once(transactional_db):
    run = chord()
    rows = claim_each(MEMBERS)
    first, *others = rows

    # The worker and lost-worker recovery both try to close the same attempt.
    twin = DBTaskResult.objects.get(pk=first.pk)
    assert close(first, return_value=1) is True
    assert close(twin, error=WorkerLost("presumed lost")) is False
    assert workflows.members(run.id)[-1].waiting_for == MEMBERS - 1

    for row in others[:-1]:
        assert close(row, return_value=2)
    assert callback_of(run).status == BLOCKED  # one member still running
    assert close(others[-1], return_value=3)
    assert callback_of(run).status == READY


def test_a_retried_member_counts_once_when_it_finally_finishes(transactional_db):
    run = chord()
    rows = claim_each(MEMBERS)
    lost = rows[0]

    # Its worker is lost: the attempt fails, attempts are left, it goes back to READY.
    assert close(lost, error=WorkerLost("gone"))
    assert DBTaskResult.objects.get(pk=lost.pk).status == READY
    for row in rows[1:]:
        assert close(row, return_value="ok")
    assert callback_of(run).status == BLOCKED
    assert workflows.members(run.id)[-1].waiting_for == 1

    [again] = claim_each(1)
    assert again.pk == lost.pk
    assert again.attempt_count == 2
    assert close(again, return_value="second time")
    callback = callback_of(run)
    assert callback.status == READY
    assert [outcome["status"] for outcome in callback.args[0]] == ["SUCCESSFUL"] * MEMBERS


def test_a_requeued_member_finishing_again_releases_nothing_twice(transactional_db):
    run = workflows.chain(tasks.always_fails, tasks.noop).enqueue()
    for _ in range(3):  # max_attempts
        [row] = claim_each(1)
        close(row, error=ValueError("no"))
    assert [r.status for r in run.refresh().results] == ["FAILED", "FAILED"]

    rows = DBTaskResult.objects.filter(pk=run.results[0].id)
    assert rows.requeue_failed(timezone.now()) == 1
    [row] = claim_each(1)
    # A claim never returns the cancelled step; the re-run finishes and changes nothing else.
    assert row.pk == int(run.results[0].id)
    assert close(row, return_value=None)
    statuses = [r.status for r in run.refresh().results]
    assert statuses == [TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED]


def test_a_callback_with_corrupt_arguments_fails_without_undoing_the_finish(transactional_db):
    run = chord()
    DBTaskResult.objects.filter(pk=run.last.id).update(arguments="not what enqueue wrote")
    rows = claim_each(MEMBERS)

    assert all(close(row, return_value="ok") for row in rows)

    members = DBTaskResult.objects.filter(pk__in=[row.pk for row in rows])
    assert set(members.values_list("status", flat=True)) == {"SUCCESSFUL"}
    callback = callback_of(run)
    assert callback.status == "FAILED"
    assert callback.attempt_count == 0
    assert "its arguments must be" in callback.cancellation_errors()[0].traceback
