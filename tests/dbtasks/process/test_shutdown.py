"""SIGTERM/SIGINT: the running task finishes and the worker exits 0; twice, it is given back."""

from __future__ import annotations

import signal
import time

import pytest

from dbtasks.compat import TaskResultStatus
from tests import tasks
from tests.dbtasks.helpers import row_of
from tests.live import wait_until
from tests.testapp.models import TaskRun

pytestmark = pytest.mark.process

SIGNALS = [pytest.param(signal.SIGTERM, id="SIGTERM"), pytest.param(signal.SIGINT, id="SIGINT")]


def running(result):
    """The task's code has begun: it records a TaskRun first thing.

    A RUNNING status alone is not enough: a row claimed a moment before the
    signal may not have reached its thread yet, and a stopping worker hands
    such a row back unstarted (tests/dbtasks/integration/test_hand_back.py).
    """
    assert row_of(result).status in {TaskResultStatus.READY, TaskResultStatus.RUNNING}
    return TaskRun.objects.filter(key=result.args[0]).exists()


@pytest.mark.parametrize("signum", SIGNALS)
def test_a_signal_lets_the_running_task_finish_then_exits_0(start_worker, signum):
    result = tasks.record_run.enqueue("graceful", seconds=2)
    worker = start_worker("--id", "graceful")
    wait_until(lambda: running(result), timeout=30, what="the task to start")
    queued = tasks.record_run.enqueue("queued")

    worker.send(signum)

    assert worker.wait(timeout=30) == 0
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
    wait_until(lambda: running(result), timeout=30, what="the task to start")
    name = signal.Signals(signum).name

    worker.send(signum)
    # Two signals that arrive before Python runs the handler count as one. The
    # worker acts on a signal within 0.1 s, so the second, a second later, is
    # seen as the second; it is repeated only if the worker is still waiting
    # for the 30 s task (the first two were merged).
    deadline = time.monotonic() + 20
    while worker.running and time.monotonic() < deadline:
        time.sleep(1)
        if worker.running:
            worker.send(signum)

    assert worker.wait() == 1
    assert f"{name} again: stopping now, running attempts will be retried" in worker.output()
    result.refresh()
    assert result.status == TaskResultStatus.READY
    assert result.attempts == 1
    (error,) = result.errors
    assert error.exception_class_path == "dbtasks.exceptions.WorkerShutdown"

    # The retry runs later, on the next worker.
    retry = start_worker("--oneshot")
    assert retry.wait(timeout=30) == 0
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.attempts == 2
    assert result.return_value == 2


def test_when_the_grace_period_runs_out_the_attempt_is_given_back(start_worker):
    result = tasks.slow_first_attempt.enqueue("slow", 30)
    worker = start_worker("--grace", "0.5")
    wait_until(lambda: running(result), timeout=30, what="the task to start")

    worker.send(signal.SIGTERM)

    assert worker.wait(timeout=15) == 1
    assert "grace period of 0.5s is over" in worker.output()
    result.refresh()
    assert result.status == TaskResultStatus.READY
    assert result.errors[0].exception_class_path == "dbtasks.exceptions.WorkerShutdown"


def test_an_idle_worker_stops_at_once(start_worker):
    worker = start_worker()
    worker.wait_registered()

    worker.send(signal.SIGTERM)

    assert worker.wait(timeout=10) == 0
    assert worker.output().rstrip().endswith("stopped after 0 tasks.")
