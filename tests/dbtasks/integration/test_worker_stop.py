"""Stopping a Worker: finish within the grace period, or give the attempt back for a retry.

The worker runs in a thread here and is stopped with request_stop(), what its
signal handler leads to; tests/dbtasks/process/test_shutdown.py sends real signals.
A task that must still be running when the worker gives it back blocks until
the test ends (a task that only sleeps might finish first on a slow machine).
"""

from __future__ import annotations

import threading

import pytest

from dbtasks.compat import TaskResultStatus
from dbtasks.models import DBTaskResult
from dbtasks.worker import EXIT_FORCED
from dbtasks.worker import EXIT_OK
from tests import tasks
from tests.dbtasks.helpers import Running
from tests.dbtasks.helpers import override_options
from tests.dbtasks.helpers import row_of
from tests.dbtasks.helpers import wait_until_started
from tests.live import patience
from tests.live import wait_until


@pytest.fixture
def start(transactional_db):
    started = []
    tasks.RELEASE.clear()

    def start(**options):
        started.append(Running(**options))
        return started[-1]

    yield start
    tasks.RELEASE.set()
    for running in started:
        running.worker.abandon.set()
        running.worker.request_stop()
        running.join()
    # Abandoned task threads finish their sleep before the database is flushed.
    for thread in threading.enumerate():
        if thread.name.startswith("dbtasks-task-"):
            thread.join(timeout=patience(30))


def test_a_stop_lets_the_running_task_finish_and_claims_nothing_more(start):
    running_task = tasks.record_run.enqueue("finishes", seconds=1)
    waiting = start()
    wait_until_started(running_task)
    queued = tasks.noop.enqueue()

    waiting.worker.request_stop()

    assert waiting.join() == EXIT_OK
    assert row_of(running_task).status == TaskResultStatus.SUCCESSFUL
    assert row_of(queued).status == TaskResultStatus.READY
    assert row_of(queued).attempt_count == 0


def test_a_second_stop_gives_the_attempt_back_for_a_retry(start):
    result = tasks.blocks_until_released.enqueue("given back")
    running = start()
    wait_until_started(result)

    running.worker.request_stop()
    running.worker.request_stop()

    assert running.join() == EXIT_FORCED
    result.refresh()
    assert result.status == TaskResultStatus.READY
    assert result.attempts == 1
    (error,) = result.errors
    assert error.exception_class_path == "dbtasks.exceptions.WorkerShutdown"
    assert error.traceback.startswith(
        f"dbtasks.exceptions.WorkerShutdown: Worker {running.worker.id!r} was stopped while "
        "running attempt 1."
    )


def test_when_the_grace_period_is_over_the_attempt_is_given_back(start):
    result = tasks.blocks_until_released.enqueue("blocked")
    running = start(grace=0.3)
    wait_until_started(result)

    running.worker.request_stop()

    # The task is blocked until the test ends: the worker did not wait for it.
    assert running.join() == EXIT_FORCED
    result.refresh()
    assert result.status == TaskResultStatus.READY
    assert result.errors[0].exception_class_path == "dbtasks.exceptions.WorkerShutdown"


def test_a_given_back_task_with_no_attempt_left_fails(start, settings):
    override_options(settings, max_attempts=1)
    result = tasks.blocks_until_released.enqueue("no attempt left")
    running = start(grace=0)
    wait_until_started(result)

    running.worker.request_stop()

    assert running.join() == EXIT_FORCED
    assert row_of(result).status == TaskResultStatus.FAILED


def test_after_max_tasks_a_stop_starts_the_grace_period(start):
    result = tasks.blocks_until_released.enqueue("max tasks")
    running = start(max_tasks=1, grace=0.2)
    wait_until_started(result)
    # The worker has stopped claiming (--max-tasks) and waits for the task...
    wait_until(running.worker.stopping.is_set, timeout=30, what="the worker to stop claiming")
    assert running.thread.is_alive()

    # ...until a stop request starts the grace period.
    running.worker.request_stop()

    assert running.join() == EXIT_FORCED
    assert DBTaskResult.objects.get().status == TaskResultStatus.READY
