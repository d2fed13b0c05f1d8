"""Claimed rows that never started go back as they were: READY, the attempt uncounted.

Three ways a worker can hold a row it will not run:
- a claim committed on the server but its reply was lost (the connection
  failed), so the worker never saw the row; it stays RUNNING under a live
  heartbeat, where lost-worker recovery never looks;
- a row claimed for a thread that was still recording its last outcome when
  the worker was told to stop;
- the same row, still waiting when the grace period ran out.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from dbtasks.compat import TaskResultStatus
from dbtasks.models import DBTaskAttempt
from dbtasks.models import DBTaskResult
from dbtasks.sql.claim import claim
from dbtasks.sql.claim import unclaim
from dbtasks.worker import Worker
from dbtasks.worker import WorkerOptions
from dbtasks.worker.stopping import give_back
from tests import tasks
from tests.dbtasks.helpers import Running
from tests.dbtasks.helpers import default_backend
from tests.dbtasks.helpers import row_of
from tests.dbtasks.helpers import wait_for_status

READY = TaskResultStatus.READY
RUNNING = TaskResultStatus.RUNNING


def claim_one(worker_id: str = "w") -> DBTaskResult:
    (row,) = claim(
        db="default",
        backend_name="default",
        queues=["default"],
        worker_id=worker_id,
        limit=1,
        now=timezone.now(),
    )
    return row


def test_unclaim_restores_a_first_attempt_as_never_claimed(db):
    result = tasks.noop.enqueue()
    row = claim_one()
    assert (row.status, row.attempt_count) == (RUNNING, 1)

    assert unclaim(row, worker_id="w")
    back = row_of(result)
    assert (back.status, back.attempt_count, back.worker_id) == (READY, 0, "")
    assert back.started_at is None
    assert back.last_attempted_at is None


def test_unclaim_restores_a_retry_to_after_its_last_attempt(db):
    result = tasks.noop.enqueue()
    first_start = timezone.now() - timedelta(minutes=5)
    DBTaskResult.objects.filter(pk=result.id).update(
        attempt_count=1, started_at=first_start, last_attempted_at=first_start
    )
    DBTaskAttempt.objects.create(
        result_id=result.id,
        number=1,
        worker_id="earlier",
        started_at=first_start,
        stopped_at=first_start + timedelta(seconds=1),
        outcome=TaskResultStatus.FAILED,
        exception_class_path="builtins.ValueError",
    )
    row = claim_one()
    assert row.attempt_count == 2

    assert unclaim(row, worker_id="w")
    back = row_of(result)
    assert (back.status, back.attempt_count) == (READY, 1)
    assert back.started_at == first_start
    assert back.last_attempted_at == first_start


def test_unclaim_leaves_a_row_that_is_no_longer_ours(db):
    tasks.noop.enqueue()
    row = claim_one()
    assert not unclaim(row, worker_id="someone-else")
    row.attempt_count += 1  # a later attempt than the one claimed
    assert not unclaim(row, worker_id="w")
    assert DBTaskResult.objects.get(pk=row.pk).status == RUNNING


def test_a_live_worker_hands_back_a_claim_it_never_received(transactional_db):
    running = Running()
    try:
        # Scheduled far ahead, so the worker does not claim it itself; then
        # made RUNNING for this worker, as a claim whose reply was lost.
        result = tasks.noop.using(run_after=timezone.now() + timedelta(hours=1)).enqueue()
        DBTaskResult.objects.filter(pk=result.id).update(
            status=RUNNING,
            worker_id=running.worker.id,
            attempt_count=1,
            started_at=timezone.now(),
            last_attempted_at=timezone.now(),
        )
        # Housekeeping runs every heartbeat interval (200 ms in the test settings).
        wait_for_status(result, READY)
        back = row_of(result)
        assert (back.attempt_count, back.worker_id, back.started_at) == (0, "", None)
        assert not DBTaskAttempt.objects.filter(result_id=int(result.id)).exists()
    finally:
        running.worker.request_stop()
        running.join()


def test_a_task_in_flight_is_never_taken_for_a_lost_claim(transactional_db):
    running = Running()
    try:
        result = tasks.sleep_for.enqueue(1.0)  # five housekeeping rounds while it runs
        wait_for_status(result, TaskResultStatus.SUCCESSFUL)
        assert row_of(result).attempt_count == 1
        assert DBTaskAttempt.objects.filter(result_id=int(result.id)).count() == 1
    finally:
        running.worker.request_stop()
        running.join()


def stopped_worker_holding(result) -> tuple[Worker, DBTaskResult]:
    """A Worker (not running) that claimed ``result``'s row for a thread not free yet."""
    worker = Worker(default_backend(), WorkerOptions())
    (row,) = worker.claim()
    assert row.pk == int(result.id)
    worker.in_flight.queue(row)  # what the loop records before a thread picks it up
    worker.request_stop()
    return worker, row


def test_a_stopping_worker_hands_back_a_row_no_thread_started(db):
    result = tasks.noop.enqueue()
    worker, row = stopped_worker_holding(result)

    worker.runner.run_one(row, True)  # the thread gets to it only now

    back = row_of(result)
    assert (back.status, back.attempt_count, back.worker_id) == (READY, 0, "")
    assert len(worker.in_flight) == 0
    assert worker.processed == 0


def test_rows_still_waiting_when_the_grace_period_ends_go_back_unstarted(db):
    result = tasks.noop.enqueue()
    worker, row = stopped_worker_holding(result)

    give_back(worker)
    worker.runner.run_one(row, True)  # a thread that gets to it afterwards leaves it alone

    back = row_of(result)
    assert (back.status, back.attempt_count) == (READY, 0)
    assert not DBTaskAttempt.objects.filter(result_id=int(result.id)).exists()
