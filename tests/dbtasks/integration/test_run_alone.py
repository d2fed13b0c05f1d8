"""Poison pills: a worker lost with several attempts in flight blames none; each runs alone next.

The live test, with worker processes that a task kills, is
tests/dbtasks/process/test_poison_pills.py.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.db import transaction
from django.utils import timezone

from dbtasks.compat import TaskResultStatus
from dbtasks.models import READY
from dbtasks.models import DBTaskResult
from dbtasks.queues import pause
from dbtasks.sql.claim import claim
from dbtasks.worker import Worker
from dbtasks.worker import WorkerOptions
from dbtasks.worker import outcomes
from dbtasks.worker import recovery
from dbtasks.worker.recovery import recover_lost_tasks
from tests import tasks
from tests.dbtasks.helpers import default_backend
from tests.dbtasks.helpers import override_options
from tests.dbtasks.helpers import row_of
from tests.dbtasks.helpers import running_on
from tests.dbtasks.helpers import wait_for_status
from tests.dbtasks.helpers import wait_until_started
from tests.live import patience
from tests.live import wait_until
from tests.testapp.models import TaskRun

DEAD = timedelta(seconds=4)  # twice tests/settings.py's heartbeat_timeout
ALONE = (
    "dbtasks.exceptions.WorkerLost: The worker process died while this task ran alone "
    "(exit by the task itself: likely os._exit, a signal or a crash in C code). "
)


def recover():
    backend = default_backend()
    return recover_lost_tasks(
        db="default", backend_name="default", config=backend.config, now=timezone.now()
    )


def test_a_worker_lost_with_several_attempts_blames_none_of_them(db, settings):
    override_options(settings, max_attempts=3)
    first = running_on("dead:1:aa", heartbeat_age=DEAD)
    last = running_on("dead:1:aa", heartbeat_age=DEAD, attempt=3)  # its last attempt
    third = running_on("dead:1:aa", heartbeat_age=DEAD, attempt=2)
    elsewhere = running_on("dead:2:bb", heartbeat_age=DEAD)

    assert recover() == 4

    for result in (first, last, third):
        row = row_of(result)
        # Retried, even the one that was on its last attempt, and alone from now on.
        assert (row.status, row.run_alone) == (READY, True)
        result.refresh()
        error = result.errors[-1]
        assert error.exception_class_path == "dbtasks.exceptions.WorkerLost"
        assert error.traceback.startswith(
            "dbtasks.exceptions.WorkerLost: Worker 'dead:1:aa' stopped heartbeating while "
            f"running attempt {row.attempt_count} and 2 other tasks (no heartbeat for 0:00:02). "
            "Any of them may have ended the process, so this attempt is not held against "
            "this task: it runs again, alone (even if it was its last attempt)."
        ), error.traceback
    # Alone on its worker: blamed as before, and alone from now on too.
    elsewhere.refresh()
    (error,) = elsewhere.errors
    assert "stopped heartbeating while running attempt 1 (no heartbeat" in error.traceback
    assert row_of(elsewhere).run_alone


def test_a_task_that_ran_alone_is_blamed_when_its_worker_dies(db, settings):
    override_options(settings, max_attempts=3)
    pill = running_on("dead:1:aa", heartbeat_age=DEAD, attempt=3, run_alone=True)

    assert recover() == 1

    pill.refresh()
    assert pill.status == TaskResultStatus.FAILED
    (error,) = pill.errors
    assert error.traceback == (
        f"{ALONE}Worker 'dead:1:aa' stopped heartbeating while running attempt 3 "
        "(no heartbeat for 0:00:02).\n"
    )


def test_a_second_recoverer_waits_for_the_first_and_agrees_how_many_were_in_flight(
    transactional_db, monkeypatch
):
    results = [running_on("dead:1:aa", heartbeat_age=DEAD) for _ in range(4)]
    one_closed, second_done = threading.Event(), threading.Event()
    real_record_attempt = outcomes.record_attempt

    def record_attempt(row, **kwargs):
        attempt = real_record_attempt(row, **kwargs)
        if threading.current_thread().name == "first" and not one_closed.is_set():
            one_closed.set()
            # Without a lock the second would recover the other three meanwhile,
            # seeing three in flight, not four. With it, it waits for this one.
            second_done.wait(patience(1))
        return attempt

    monkeypatch.setattr(recovery, "record_attempt", record_attempt)
    closed = []

    def recover_in(name, after=None, then=None):
        def run():
            if after is not None:
                after.wait(patience(30))
            try:
                closed.append(recover())
            finally:
                connection.close()
                if then is not None:
                    then.set()

        return threading.Thread(target=run, name=name)

    threads = [recover_in("first"), recover_in("second", after=one_closed, then=second_done)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(patience(30))

    assert sorted(closed) == [0, 4]
    for result in results:
        result.refresh()
        (error,) = result.errors
        assert "and 3 other tasks" in error.traceback, error.traceback


def make_alone(result):
    DBTaskResult.objects.filter(pk=result.id).update(run_alone=True)
    return result


def claim_now(**options):
    return claim(
        db="default",
        backend_name="default",
        queues=["default"],
        worker_id="w",
        limit=10,
        now=timezone.now(),
        **options,
    )


def test_ordinary_claims_skip_tasks_to_run_alone_and_the_alone_claim_takes_only_them(db):
    alone = make_alone(tasks.echo.using(priority=10).enqueue())
    ordinary = tasks.echo.enqueue()

    assert [row.pk for row in claim_now()] == [int(ordinary.id)]
    assert [row.pk for row in claim_now(alone=True)] == [int(alone.id)]
    assert row_of(alone).run_alone  # it stays marked while it runs, and after


def idle_worker(threads=2):
    """A worker that is not running: its plans and its look for tasks to run alone."""
    return Worker(default_backend(), WorkerOptions(threads=threads))


def test_a_worker_plans_to_claim_a_task_to_run_alone_only_with_nothing_in_flight(db):
    worker = idle_worker()
    alone = worker.alone
    assert alone.plan(2) == [(2, False)]

    alone.waiting = True
    assert alone.plan(2) == [(1, True), (2, False)]  # idle: one alone, else ordinary ones
    assert alone.plan(0) == []  # --max-tasks reached
    busy = DBTaskResult(pk=1, attempt_count=1)
    worker.in_flight.add([busy])
    assert alone.plan(1) == [(1, False)]  # busy: ordinary rows, as long as it is not overdue
    alone.overdue = True
    assert alone.plan(1) == []  # overdue: make room, claim nothing until the tasks end
    worker.in_flight.finish(busy, ran=True)

    worker.in_flight.add([DBTaskResult(pk=2, attempt_count=1, run_alone=True)])
    # Running one alone: nothing else, and no thread counts as free.
    assert alone.plan(2) == []
    assert worker.in_flight.free_threads() == 0


def test_a_worker_sees_tasks_to_run_alone_in_its_queues_and_when_one_is_overdue(db):
    worker = idle_worker()
    alone = worker.alone
    now = timezone.now()
    alone.refresh(now)
    assert (alone.waiting, alone.overdue) == (False, False)

    make_alone(tasks.echo.using(queue_name="other").enqueue())
    alone.refresh(now)
    assert (alone.waiting, alone.overdue) == (True, False)
    alone.refresh(now + worker.config.heartbeat_timeout + timedelta(seconds=1))
    assert (alone.waiting, alone.overdue) == (True, True)

    pause("other")
    worker.paused = frozenset({"other"})
    alone.refresh(now)
    assert (alone.waiting, alone.overdue) == (False, False)


@pytest.fixture
def released():
    tasks.RELEASE.clear()
    yield
    tasks.RELEASE.set()


def test_a_worker_runs_a_task_alone_and_claims_nothing_else_meanwhile(threaded_worker, released):
    worker = threaded_worker
    plans = []
    plan = worker.alone.plan

    def spy(limit):
        plans.append(plan(limit))
        return plans[-1]

    worker.alone.plan = spy
    with transaction.atomic():
        alone = make_alone(tasks.blocks_until_released.enqueue("alone"))
    wait_until_started(alone)

    others = [tasks.record_run.enqueue(f"other-{n}") for n in range(3)]
    # The loop asks what to claim again and again, and the answer is: nothing.
    asked = len(plans)
    wait_until(lambda: plans[asked:].count([]) >= 5, timeout=30, what="five more claim plans")
    assert all(row_of(result).status == READY for result in others)
    assert not TaskRun.objects.filter(key__startswith="other-").exists()

    tasks.RELEASE.set()
    for result in [alone, *others]:
        wait_for_status(result, TaskResultStatus.SUCCESSFUL)
