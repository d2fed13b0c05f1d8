"""Outcomes in batches (``dbtasks/worker/batching.py``): fewer transactions, same guarantees.

The tests that run a worker decide how many rows a claim takes ahead, and
keep the main thread from writing early (its ``BUDGET``), so none depends
on how fast this machine runs a task.
"""

from __future__ import annotations

import pytest
from django.db import DataError
from django.db import OperationalError
from django.utils import timezone

from dbtasks.compat import TaskResultStatus
from dbtasks.compat import task_finished
from dbtasks.models import DBTaskAttempt
from dbtasks.models import DBTaskResult
from dbtasks.sql import close as close_sql
from dbtasks.worker import Worker
from dbtasks.worker import WorkerOptions
from dbtasks.worker import batching
from dbtasks.worker.batching import Kept
from dbtasks.worker.outcomes import record_until_done
from dbtasks.worker.stopping import give_back
from tests import tasks
from tests.dbtasks.helpers import Clock
from tests.dbtasks.helpers import Running
from tests.dbtasks.helpers import claim_ahead_by
from tests.dbtasks.helpers import default_backend
from tests.dbtasks.helpers import join_task_threads
from tests.dbtasks.helpers import row_of
from tests.dbtasks.helpers import run_worker_at
from tests.dbtasks.helpers import wait_for_status
from tests.dbtasks.helpers import wait_until_started

RUNNING = TaskResultStatus.RUNNING
SUCCESSFUL = TaskResultStatus.SUCCESSFUL


@pytest.fixture
def batches(monkeypatch) -> list[int]:
    """The size of each batch of closes written."""
    sizes: list[int] = []
    original = close_sql.close_attempts

    def counted(db, closes, **kwargs):
        sizes.append(len(closes))
        return original(db, closes, **kwargs)

    monkeypatch.setattr(batching, "close_attempts", counted)
    return sizes


@pytest.fixture
def singles(monkeypatch) -> list[str]:
    """The rows whose outcome a task thread wrote on its own (nothing else kept or waiting)."""
    written: list[str] = []

    def counted(row, **kwargs):
        written.append(str(row.pk))
        return record_until_done(row, **kwargs)

    # Where execution.py looks it up.
    monkeypatch.setattr("dbtasks.worker.execution.record_until_done", counted)
    return written


def test_quick_tasks_outcomes_are_written_together_and_each_once(
    transactional_db, monkeypatch, batches, singles
):
    claim_ahead_by(monkeypatch, 5, write_after=3600.0)  # the main thread never writes early
    finished: list[str] = []

    def count(sender, task_result, **kwargs):
        finished.append(task_result.id)

    task_finished.connect(count, weak=False)
    try:
        results = [tasks.noop.enqueue() for _ in range(12)]
        worker = run_worker_at(Clock(), threads=1)
    finally:
        task_finished.disconnect(count)

    assert worker.processed == 12
    assert max(batches) > 1
    # Each outcome written once: in a batch, or on its own when, as it ended,
    # nothing was kept and no row waited (execution.py; a CI run once wrote
    # the first of the twelve so, the other eleven in batches of 6 and 5).
    assert sum(batches) + len(singles) == 12
    for result in results:
        row = row_of(result)
        assert (row.status, row.attempt_count) == (SUCCESSFUL, 1)
        assert DBTaskAttempt.objects.filter(result_id=int(result.id)).count() == 1
    assert sorted(finished) == sorted(result.id for result in results)  # once each


def test_an_outcome_kept_behind_a_slow_task_is_written_by_the_main_thread(
    transactional_db, monkeypatch
):
    claim_ahead_by(monkeypatch, 1, write_after=0.0)
    tasks.RELEASE.clear()
    quick = tasks.noop.enqueue()
    slow = tasks.blocks_until_released.enqueue("slow")
    running = Running(threads=1)
    try:
        wait_until_started(slow)  # the quick one ran first, its outcome kept
        wait_for_status(quick, SUCCESSFUL)  # while the slow one still holds the thread
        assert row_of(slow).status == RUNNING
    finally:
        tasks.RELEASE.set()
        running.worker.request_stop()
        running.join()
        join_task_threads()
    assert row_of(slow).status == SUCCESSFUL


def test_a_workflow_member_or_a_limited_task_is_closed_on_its_own(db):
    worker = Worker(default_backend(), WorkerOptions())
    assert worker.batch.takes(DBTaskResult(id=1, in_workflow=False, concurrency_key=""))
    # Their closes release members or give a slot back in the same transaction.
    assert not worker.batch.takes(DBTaskResult(id=2, in_workflow=True, concurrency_key=""))
    assert not worker.batch.takes(DBTaskResult(id=3, in_workflow=False, concurrency_key="user:1"))


def kept_outcome(worker: Worker, row: DBTaskResult, then: list) -> Kept:
    worker.in_flight.queue(row)
    worker.in_flight.start(row)
    record = {
        "worker_id": worker.id,
        "policy": worker.config.policy(row.queue_name, row.task_path),
        "now": timezone.now(),
        "return_value": None,
    }
    return Kept(row, record, then=then.append)


def claimed(worker: Worker, count: int) -> list[DBTaskResult]:
    for _ in range(count):
        tasks.noop.enqueue()
    rows = worker.claim()
    assert len(rows) == count
    return rows


def test_an_attempt_closed_by_someone_else_meanwhile_is_not_overwritten(db):
    worker = Worker(default_backend(), WorkerOptions(threads=2))
    ours, lost = claimed(worker, 2)
    written: list = []
    worker.batch._kept += [kept_outcome(worker, row, written) for row in (ours, lost)]
    # Lost-worker recovery (say) closed the second attempt while the outcome waited.
    DBTaskResult.objects.filter(pk=lost.pk).update(status=TaskResultStatus.FAILED, worker_id="")

    worker.batch.write()

    assert DBTaskResult.objects.get(pk=ours.pk).status == SUCCESSFUL
    assert DBTaskResult.objects.get(pk=lost.pk).status == TaskResultStatus.FAILED
    assert not DBTaskAttempt.objects.filter(result_id=lost.pk).exists()
    assert [attempt is None for attempt in written] == [False, True]
    assert len(worker.in_flight) == 0  # both settled


def test_a_failed_write_keeps_the_outcomes_for_the_next_try(db, monkeypatch):
    worker = Worker(default_backend(), WorkerOptions())
    (row,) = claimed(worker, 1)
    written: list = []
    worker.batch._kept.append(kept_outcome(worker, row, written))

    def refuse(*args, **kwargs):
        raise OperationalError("the database is away")

    monkeypatch.setattr(batching, "close_attempts", refuse)
    worker.batch.write()
    assert (row_of(row).status, len(worker.batch), written) == (RUNNING, 1, [])
    worker.batch.write(older_than=0)  # the main thread's next try waits its backoff
    assert len(worker.batch) == 1

    monkeypatch.undo()
    worker.batch.write()
    assert row_of(row).status == SUCCESSFUL
    assert len(written) == 1
    assert written[0] is not None


def test_a_batch_the_database_refuses_for_good_is_written_one_by_one(db, monkeypatch):
    worker = Worker(default_backend(), WorkerOptions(threads=2))
    rows = claimed(worker, 2)
    written: list = []
    worker.batch._kept += [kept_outcome(worker, row, written) for row in rows]

    def refuse(*args, **kwargs):
        raise DataError("value too long for type character varying(10)")

    monkeypatch.setattr(batching, "close_attempts", refuse)
    worker.batch.write()  # each on its own (outcomes.record_until_done), which takes them

    assert [row_of(row).status for row in rows] == [SUCCESSFUL, SUCCESSFUL]
    assert len(written) == 2
    assert len(worker.in_flight) == 0


def test_a_forced_stop_writes_the_kept_outcomes_first(db):
    worker = Worker(default_backend(), WorkerOptions())
    (row,) = claimed(worker, 1)
    written: list = []
    worker.batch._kept.append(kept_outcome(worker, row, written))

    give_back(worker)  # else the attempt would be closed as WorkerShutdown

    assert row_of(row).status == SUCCESSFUL
    assert list(DBTaskAttempt.objects.filter(result_id=row.pk).values_list("outcome")) == [
        (SUCCESSFUL,)
    ]
