"""SIGKILL mid-task: another worker closes the attempt as WorkerLost; the retry policy applies."""

from __future__ import annotations

import signal
from datetime import timedelta

import pytest

from dbtasks.compat import TaskResultStatus
from dbtasks.models import DBTaskAttempt
from tests import tasks
from tests.dbtasks.helpers import row_of
from tests.live import STARTUP_TIMEOUT
from tests.live import wait_until
from tests.testapp.models import TaskRun

pytestmark = pytest.mark.process

HEARTBEAT_TIMEOUT = timedelta(seconds=2)  # tests/settings.py


def kill_while_running(start_worker, result, **options):
    doomed = start_worker("--id", "doomed", **options)
    # The task records its run, then sleeps: kill it in the middle.
    wait_until(
        lambda: TaskRun.objects.filter(key="crash").exists(),
        timeout=STARTUP_TIMEOUT,
        what="the task to start",
    )
    assert row_of(result).status == TaskResultStatus.RUNNING
    doomed.send(signal.SIGKILL)
    assert doomed.wait() == -signal.SIGKILL
    return doomed


def test_a_killed_workers_task_is_retried_by_another_worker(start_worker):
    result = tasks.slow_first_attempt.enqueue("crash", 60)
    doomed = kill_while_running(start_worker, result)

    rescuer = start_worker("--id", "rescuer")
    wait_until(
        lambda: row_of(result).status == TaskResultStatus.SUCCESSFUL,
        timeout=STARTUP_TIMEOUT,
        what="the retry to succeed",
    )

    result.refresh()
    assert result.attempts == 2
    assert result.return_value == 2
    assert result.worker_ids[0].startswith(f"doomed:{doomed.pid}:")
    assert result.worker_ids[1].startswith(f"rescuer:{rescuer.pid}:")
    (error,) = result.errors
    assert error.exception_class_path == "dbtasks.exceptions.WorkerLost"
    assert f"Worker '{result.worker_ids[0]}' stopped heartbeating while running attempt 1" in (
        error.traceback
    )
    # Not before the heartbeat timeout.
    lost = DBTaskAttempt.objects.get(number=1)
    assert lost.stopped_at - lost.started_at >= HEARTBEAT_TIMEOUT
    assert TaskRun.objects.filter(key="crash").count() == 2
    assert f"worker {result.worker_ids[0]} lost; attempt 1 closed, task now READY" in (
        rescuer.output()
    )
    rescuer.send(signal.SIGTERM)
    assert rescuer.wait() == 0


def test_with_no_attempt_left_the_task_fails(start_worker):
    result = tasks.slow_first_attempt.enqueue("crash", 60)
    kill_while_running(start_worker, result, options={"max_attempts": 1})

    start_worker("--id", "rescuer", options={"max_attempts": 1})
    wait_until(
        lambda: row_of(result).status == TaskResultStatus.FAILED,
        timeout=STARTUP_TIMEOUT,
        what="the task to fail",
    )

    result.refresh()
    assert result.attempts == 1
    assert result.errors[0].exception_class_path == "dbtasks.exceptions.WorkerLost"
    assert TaskRun.objects.filter(key="crash").count() == 1
