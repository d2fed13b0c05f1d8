"""A task that checks for stop requests ends at its timeout, and the retry policy applies."""

from __future__ import annotations

from tests.dbtasks import control_tasks
from tests.dbtasks.helpers import Running
from tests.dbtasks.helpers import override_options
from tests.dbtasks.helpers import wait_for_status


def test_a_task_past_its_timeout_fails_with_task_timeout_and_is_retried(transactional_db, settings):
    path = "tests.dbtasks.control_tasks.checks_until_cancelled"
    override_options(settings, tasks={path: {"timeout": "300 ms", "max_attempts": 2}})
    running = Running(threads=1)
    try:
        result = control_tasks.checks_until_cancelled.enqueue("slow")
        wait_for_status(result, "FAILED", timeout=30)
    finally:
        running.worker.request_stop()
        running.join(timeout=30)

    result.refresh()
    assert [error.exception_class_path for error in result.errors] == [
        "dbtasks.exceptions.TaskTimeout"
    ] * 2
    assert "ran past its timeout of 0:00:00.300000" in result.errors[0].traceback
    # It stopped itself each time: the worker never had to give up a thread.
    assert running.worker.pool is not None
    assert running.worker.pool.hung() == 0
