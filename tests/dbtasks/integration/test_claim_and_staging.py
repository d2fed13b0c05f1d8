"""Only READY rows are claimed; SCHEDULED rows become READY when due (staging).

The claim's order holds across the queues a worker serves, and on SQLite
each queue is one search of dbtasks_ready_idx (the Postgres plan is checked
in tests/dbtasks/postgres/test_claim_plan.py).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db import transaction
from django.utils import timezone

from dbtasks.compat import TaskResultStatus
from dbtasks.models import READY
from dbtasks.models import SCHEDULED
from dbtasks.models import SUCCESSFUL
from dbtasks.sql import stage
from dbtasks.sql.claim import claim
from dbtasks.sql.stage import stage_due
from tests import tasks
from tests.dbtasks.helpers import Clock
from tests.dbtasks.helpers import default_backend
from tests.dbtasks.helpers import row_of
from tests.dbtasks.helpers import run_worker_at


def claim_at(now, queues=("default",), limit=10):
    return claim(
        db="default",
        backend_name="default",
        queues=list(queues),
        worker_id="w",
        limit=limit,
        now=now,
    )


def test_a_task_due_later_is_scheduled_and_reads_as_ready(db):
    result = tasks.noop.using(run_after=timezone.now() + timedelta(hours=1)).enqueue()

    assert row_of(result).status == SCHEDULED
    assert result.status == TaskResultStatus.READY
    result.refresh()
    assert result.status == TaskResultStatus.READY


def test_a_task_due_now_or_before_is_ready_at_once(db):
    past = tasks.noop.using(run_after=timezone.now() - timedelta(minutes=1)).enqueue()
    plain = tasks.noop.enqueue()

    assert [row_of(past).status, row_of(plain).status] == [READY, READY]


def test_a_scheduled_row_is_claimed_only_once_staged_when_due(db):
    due = timezone.now() + timedelta(hours=1)
    result = tasks.noop.using(run_after=due).enqueue()

    # Not claimable, not even by a clock past its time: staging comes first.
    assert claim_at(due + timedelta(seconds=1)) == []
    assert stage_due(db="default", now=due - timedelta(microseconds=1)) == {}
    assert row_of(result).status == SCHEDULED

    assert stage_due(db="default", now=due) == {"default": 1}
    assert stage_due(db="default", now=due) == {}  # staging twice changes nothing
    (row,) = claim_at(due)
    assert str(row.pk) == result.id


def test_staging_goes_on_in_batches_until_every_due_row_is_ready(db, monkeypatch):
    monkeypatch.setattr(stage, "BATCH_SIZE", 2)
    now = timezone.now()
    for queue in ["default", "default", "default", "low_priority", "low_priority"]:
        tasks.noop.using(queue_name=queue, run_after=now + timedelta(seconds=5)).enqueue()
    later = tasks.noop.using(run_after=now + timedelta(hours=1)).enqueue()

    staged = stage_due(db="default", now=now + timedelta(seconds=5))

    assert staged == {"default": 3, "low_priority": 2}
    assert row_of(later).status == SCHEDULED


def test_a_task_due_later_runs_once_due_and_not_before(transactional_db):
    clock = Clock()
    result = tasks.noop.using(run_after=clock.now + timedelta(minutes=10)).enqueue()

    clock.advance(minutes=10, microseconds=-1)
    run_worker_at(clock)
    assert row_of(result).status == SCHEDULED

    clock.advance(microseconds=1)
    run_worker_at(clock)
    assert row_of(result).status == SUCCESSFUL


def test_a_scheduled_task_can_be_cancelled(db):
    result = tasks.noop.using(run_after=timezone.now() + timedelta(hours=1)).enqueue()

    assert default_backend().cancel(result.id)

    result.refresh()
    assert result.status == TaskResultStatus.FAILED


def test_the_claim_takes_the_best_rows_across_its_queues_in_order(db):
    now = timezone.now()
    enqueued = {
        name: task.enqueue()
        for name, task in {
            "default-0": tasks.noop,
            "default-3": tasks.noop.using(priority=3),
            "low-5": tasks.noop.using(queue_name="low_priority", priority=5),
            "low-1": tasks.noop.using(queue_name="low_priority", priority=1),
            "other-9": tasks.noop.using(queue_name="other", priority=9),  # not served
            "scheduled-9": tasks.noop.using(priority=9, run_after=now + timedelta(hours=1)),
        }.items()
    }
    names = {result.id: name for name, result in enqueued.items()}

    first = claim_at(timezone.now(), queues=["default", "low_priority"], limit=3)
    rest = claim_at(timezone.now(), queues=["default", "low_priority"], limit=3)

    assert [names[str(row.pk)] for row in first] == ["low-5", "default-3", "low-1"]
    assert [names[str(row.pk)] for row in rest] == ["default-0"]


def test_the_claim_keeps_age_order_within_a_priority(db):
    results = [
        tasks.noop.using(queue_name=queue).enqueue() for queue in ["low_priority", "default"] * 2
    ]

    rows = claim_at(timezone.now(), queues=["default", "low_priority"], limit=4)

    assert [str(row.pk) for row in rows] == [result.id for result in results]


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's EXPLAIN QUERY PLAN")
def test_on_sqlite_each_queue_is_one_search_of_the_ready_index(db):
    tasks.noop.enqueue()
    sent = []

    def capture(execute, sql, params, many, context):
        sent.append((sql, params))
        return execute(sql, params, many, context)

    with transaction.atomic(), connection.execute_wrapper(capture):
        claim_at(timezone.now(), queues=["default", "low_priority", "other"], limit=4)
        transaction.set_rollback(True)
    ((sql, params),) = sent
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        steps = [row[3] for row in cursor.fetchall()]

    reads = [step for step in steps if "dbtasks_dbtaskresult" in step]
    searches = [step for step in reads if "USING INDEX dbtasks_ready_idx" in step]
    assert len(searches) == 3, steps
    assert all("(backend_name=? AND queue_name=? AND run_alone=?)" in step for step in searches), (
        steps
    )
    # Besides those, only the UPDATE's lookups by primary key; no scan.
    assert set(reads) - set(searches) == {
        "SEARCH dbtasks_dbtaskresult USING INTEGER PRIMARY KEY (rowid=?)"
    }, steps
    # Each queue's rows come out of the index in claim order: the only
    # sort is the final merge of at most limit rows per queue.
    assert steps.count("USE TEMP B-TREE FOR ORDER BY") == 1, steps
