"""Cancelling a RUNNING task: it is asked to stop, and ends FAILED with TaskCancelled."""

from __future__ import annotations

import pytest

from dbtasks.exceptions import TaskCancelled
from dbtasks.models import DBTaskResult
from dbtasks.worker.interrupts import Interrupts
from tests.dbtasks import control_tasks
from tests.dbtasks.helpers import default_backend
from tests.dbtasks.helpers import row_of
from tests.dbtasks.helpers import wait_for_status
from tests.live import wait_until
from tests.testapp.models import TaskRun


def started(key: str) -> bool:
    return TaskRun.objects.filter(key=key).exists()


@pytest.mark.parametrize(
    "task",
    [
        pytest.param(control_tasks.checks_until_cancelled, id="sync-task-that-checks"),
        pytest.param(control_tasks.awaits_forever, id="async-task"),
    ],
)
def test_a_running_task_asked_to_cancel_stops_failed_and_is_not_retried(threaded_worker, task):
    result = task.enqueue("cancel-me")
    wait_until(lambda: started("cancel-me"), timeout=30, what="the task to start")

    assert default_backend().cancel(result.id) is True

    wait_for_status(result, "FAILED", timeout=30)
    result.refresh()
    assert result.attempts == 1  # max_attempts is 3: no retry
    assert [error.exception_class_path for error in result.errors] == [
        "dbtasks.exceptions.TaskCancelled"
    ]
    assert "while running" in result.errors[0].traceback
    assert row_of(result).cancel_requested_at is not None
    assert TaskRun.objects.filter(key="cancel-me").count() == 1


def test_a_task_that_does_not_stop_finishes_and_keeps_the_request(threaded_worker):
    result = control_tasks.finishes_despite_cancel.enqueue("stubborn")
    wait_until(lambda: started("stubborn"), timeout=30, what="the task to start")

    assert default_backend().cancel(result.id) is True

    wait_for_status(result, "SUCCESSFUL", timeout=30)
    result.refresh()
    assert result.return_value is True  # the task saw the request
    assert row_of(result).cancel_requested_at is not None


def test_cancel_requests_reach_only_the_attempt_they_name():
    interrupts = Interrupts()
    control = interrupts.begin(DBTaskResult(pk=7, attempt_count=2), timeout=None)

    assert interrupts.interrupt(7, 1, TaskCancelled("an earlier attempt")) is False
    assert control.reason is None
    assert interrupts.interrupt(7, 2, TaskCancelled("this one")) is True
    assert str(control.reason) == "this one"
    assert interrupts.interrupt(7, 2, TaskCancelled("again")) is False
    assert str(control.reason) == "this one"


def test_cancel_of_a_finished_task_is_refused(threaded_worker):
    result = control_tasks.checks_until_cancelled.enqueue("done")
    wait_until(lambda: started("done"), timeout=30, what="the task to start")
    default_backend().cancel(result.id)
    wait_for_status(result, "FAILED", timeout=30)

    assert default_backend().cancel(result.id) is False
