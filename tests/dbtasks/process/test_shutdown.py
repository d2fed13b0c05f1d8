"""SIGTERM/SIGINT: the running task finishes and the worker exits 0; twice, it is given back."""

from __future__ import annotations

import signal

import pytest

from dbtasks.compat import TaskResultStatus
from tests import tasks
from tests.dbtasks.helpers import has_started
from tests.dbtasks.helpers import row_of
from tests.live import STARTUP_TIMEOUT as STARTUP
from tests.live import wait_until
from tests.testapp.models import TaskRun

pytestmark = pytest.mark.process

SIGNALS = [pytest.param(signal.SIGTERM, id="SIGTERM"), pytest.param(signal.SIGINT, id="SIGINT")]


def running(result):
    """The task's code has begun (see has_started)."""
    assert row_of(result).status in {TaskResultStatus.READY, TaskResultStatus.RUNNING}
    return has_started(result)


@pytest.mark.parametrize("signum", SIGNALS)
def test_a_signal_lets_the_running_task_finish_then_exits_0(start_worker, signum):
    result = tasks.record_run.enqueue("graceful", seconds=2)
    worker = start_worker("--id", "graceful")
    wait_until(lambda: running(result), timeout=STARTUP, what="the task to start")
    queued = tasks.record_run.enqueue("queued")

    worker.send(signum)

    assert worker.wait(timeout=STARTUP) == 0
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.attempts == 1
    # It claimed nothing more once told to stop.
    assert row_of(queued).status == TaskResultStatus.READY
    assert row_of(queued).attempt_count == 0
    assert list(TaskRun.objects.values_list("key", flat=True)) == ["graceful"]
    assert worker.output().rstrip().endswith("stopped after 1 tasks.")


@pytest.mark.parametrize("signum", SIGNALS)
def test_a_second_signal_gives_the_attempt_back_for_a_retry(start_worker, signum):
    result = tasks.slow_first_attempt.enqueue("twice", 30)
    worker = start_worker("--id", "impatient")
    wait_until(lambda: running(result), timeout=STARTUP, what="the task to start")
    name = signal.Signals(signum).name

    worker.send(signum)
    # Two signals that arrive before Python runs the handler count as one: the
    # second is sent once the worker has said it acted on the first.
    wait_until(
        lambda: f"{name}: finishing 1 running task(s)" in worker.output(),
        timeout=STARTUP,
        what=f"the worker to act on the first {name}",
        details=worker.describe,
    )
    worker.send(signum)

    assert worker.wait(timeout=STARTUP) == 1
    assert f"{name} again: stopping now, running attempts will be retried" in worker.output()
    result.refresh()
    assert result.status == TaskResultStatus.READY
    assert result.attempts == 1
    (error,) = result.errors
    assert error.exception_class_path == "dbtasks.exceptions.WorkerShutdown"

    # The retry runs later, on the next worker.
    retry = start_worker("--oneshot")
    assert retry.wait(timeout=STARTUP) == 0
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.attempts == 2
    assert result.return_value == 2


def test_when_the_grace_period_runs_out_the_attempt_is_given_back(start_worker):
    result = tasks.slow_first_attempt.enqueue("slow", 30)
    worker = start_worker("--grace", "0.5")
    wait_until(lambda: running(result), timeout=STARTUP, what="the task to start")

    worker.send(signal.SIGTERM)

    assert worker.wait(timeout=STARTUP) == 1
    assert "grace period of 0.5s is over" in worker.output()
    result.refresh()
    assert result.status == TaskResultStatus.READY
    assert result.errors[0].exception_class_path == "dbtasks.exceptions.WorkerShutdown"


def test_an_idle_worker_stops_at_once(start_worker):
    worker = start_worker()
    worker.wait_registered()

    worker.send(signal.SIGTERM)

    assert worker.wait(timeout=STARTUP) == 0
    assert worker.output().rstrip().endswith("stopped after 0 tasks.")
