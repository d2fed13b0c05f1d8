"""Timeouts with real worker processes: a sync task asleep for ever, one blocked on a
socket that never answers, and an async one. None may keep a thread's capacity."""

from __future__ import annotations

import signal
import socket

import pytest

from dbtasks.compat import TaskResultStatus
from tests import tasks
from tests.dbtasks import control_tasks
from tests.dbtasks.helpers import row_of
from tests.live import wait_until
from tests.testapp.models import TaskRun

pytestmark = pytest.mark.process

PATH = "tests.dbtasks.control_tasks"


def finished(result) -> bool:
    return row_of(result).status in {TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED}


def error_paths(result) -> list[str]:
    result.refresh()
    return [error.exception_class_path for error in result.errors]


def test_a_stuck_sync_task_times_out_is_retried_and_its_thread_replaced(start_worker):
    options = {"tasks": {f"{PATH}.sleeps_forever": {"timeout": "1 second", "max_attempts": 2}}}
    worker = start_worker(
        "--threads", "1", "--max-hung-threads", "3", "--grace", "5", options=options
    )
    stuck = control_tasks.sleeps_forever.enqueue("asleep")

    wait_until(lambda: finished(stuck), timeout=60, what="both attempts to time out")
    assert error_paths(stuck) == ["dbtasks.exceptions.TaskTimeout"] * 2
    assert stuck.status == TaskResultStatus.FAILED
    assert TaskRun.objects.filter(key="asleep").count() == 2

    # Both threads that ran it are stuck for ever; a third, new one runs this.
    after = tasks.noop.enqueue()
    wait_until(lambda: finished(after), timeout=30, what="a task after the stuck ones")
    assert row_of(after).status == TaskResultStatus.SUCCESSFUL
    assert "its thread is replaced (2 stuck)" in worker.output()

    # Shutdown does not wait for the stuck threads.
    worker.send(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0


def test_too_many_stuck_threads_make_the_worker_exit_to_be_restarted(start_worker):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel accepts connections; nobody ever answers
        port = silent.getsockname()[1]
        options = {
            "tasks": {f"{PATH}.reads_a_silent_socket": {"timeout": "1 second", "max_attempts": 1}}
        }
        worker = start_worker("--threads", "2", "--max-hung-threads", "1", options=options)
        blocked = control_tasks.reads_a_silent_socket.enqueue("blocked", port)

        assert worker.wait(timeout=60) == 3
        assert error_paths(blocked) == ["dbtasks.exceptions.TaskTimeout"]
        assert blocked.status == TaskResultStatus.FAILED
        assert "stopping so a fresh process takes over" in worker.output()


def test_an_async_task_past_its_timeout_is_cancelled(start_worker):
    options = {"timeout": "1 second", "max_attempts": 1}
    worker = start_worker("--threads", "1", options=options)
    result = control_tasks.awaits_forever.enqueue("awaiting")

    wait_until(lambda: finished(result), timeout=60, what="the async task to time out")
    assert error_paths(result) == ["dbtasks.exceptions.TaskTimeout"]
    # Cancelled, so its own thread recorded it: no thread was given up on.
    assert "did not stop" not in worker.output()
    after = tasks.noop.enqueue()
    wait_until(lambda: finished(after), timeout=30, what="the next task")
    worker.send(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
