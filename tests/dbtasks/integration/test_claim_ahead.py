"""Claiming ahead (``dbtasks/worker/ahead.py``): more rows per claim, the same guarantees.

Each test decides how many rows a claim takes ahead (``ClaimAhead.extra``),
so none depends on how fast this machine runs a task.
"""

from __future__ import annotations

import pytest

from dbtasks.compat import TaskResultStatus
from dbtasks.models import DBTaskAttempt
from dbtasks.sql import claim as claim_sql
from dbtasks.worker import EXIT_OK
from dbtasks.worker import claiming
from tests import tasks
from tests.dbtasks.helpers import Clock
from tests.dbtasks.helpers import Running
from tests.dbtasks.helpers import claim_ahead_by
from tests.dbtasks.helpers import join_task_threads
from tests.dbtasks.helpers import row_of
from tests.dbtasks.helpers import run_worker_at
from tests.dbtasks.helpers import wait_until_started
from tests.live import wait_until

READY = TaskResultStatus.READY
SUCCESSFUL = TaskResultStatus.SUCCESSFUL


@pytest.fixture
def claims(monkeypatch) -> list[int]:
    """How many rows each claim of dbtasks.sql.claim.claim() returned."""
    counts: list[int] = []
    original = claim_sql.claim

    def counted(**kwargs):
        rows = original(**kwargs)
        counts.append(len(rows))
        return rows

    monkeypatch.setattr(claiming, "claim", counted)
    return counts


def test_quick_tasks_are_claimed_several_at_a_time_and_each_runs_once(
    transactional_db, monkeypatch, claims
):
    monkeypatch.setattr("dbtasks.worker.ahead.BUDGET", 3600.0)  # every task is quick
    results = [tasks.noop.enqueue() for _ in range(30)]

    worker = run_worker_at(Clock(), threads=1)

    assert worker.processed == 30
    assert max(claims) > 1  # the first claim takes one; once a task has run, more
    assert sum(claims) == 30
    for result in results:
        row = row_of(result)
        assert (row.status, row.attempt_count) == (SUCCESSFUL, 1)
    assert DBTaskAttempt.objects.count() == 30


@pytest.fixture
def released(transactional_db):
    tasks.RELEASE.clear()
    started: list[Running] = []
    yield started
    tasks.RELEASE.set()
    for running in started:
        running.worker.request_stop()
        running.worker.request_stop()
        running.join()
    join_task_threads()


def test_a_stop_hands_back_the_rows_claimed_ahead_unstarted(monkeypatch, claims, released):
    claim_ahead_by(monkeypatch, 3)
    first = tasks.blocks_until_released.enqueue("first")
    behind = [tasks.noop.enqueue() for _ in range(3)]
    running = Running(threads=1)
    released.append(running)
    wait_until_started(first)
    assert claims[0] == 4  # one for the thread, three ahead

    running.worker.request_stop()
    tasks.RELEASE.set()

    assert running.join() == EXIT_OK
    assert row_of(first).status == SUCCESSFUL
    for result in behind:
        row = row_of(result)
        assert (row.status, row.attempt_count, row.worker_id) == (READY, 0, "")
        assert not DBTaskAttempt.objects.filter(result_id=int(result.id)).exists()


def test_rows_claimed_ahead_behind_a_slow_task_go_back_to_the_queue(monkeypatch, claims, released):
    claim_ahead_by(monkeypatch, 3)
    monkeypatch.setattr("dbtasks.worker.loop.OVERDUE", 0.0)  # overdue as soon as they wait
    first = tasks.blocks_until_released.enqueue("first")
    behind = [tasks.noop.enqueue() for _ in range(3)]
    running = Running(threads=1)
    released.append(running)
    wait_until_started(first)
    assert claims[0] == 4

    # While the first task holds the only thread, the main thread hands them back.
    wait_until(
        lambda: all(row_of(result).status == READY for result in behind),
        timeout=30,
        what="the rows claimed ahead to be handed back",
    )
    for result in behind:
        assert (row_of(result).attempt_count, row_of(result).worker_id) == (0, "")

    tasks.RELEASE.set()
    wait_until(
        lambda: all(row_of(result).status == SUCCESSFUL for result in behind),
        timeout=30,
        what="the rows handed back to run",
    )
    for result in behind:
        assert row_of(result).attempt_count == 1
        assert DBTaskAttempt.objects.filter(result_id=int(result.id)).count() == 1
