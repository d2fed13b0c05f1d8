"""The heartbeat child process: task code holding the GIL cannot starve it, yet a
killed worker stops heartbeating and a paused one looks as dead as it is."""

from __future__ import annotations

import re
import signal

import pytest
from django.db import connection

from dbtasks.compat import TaskResultStatus
from tests.dbtasks import control_tasks
from tests.dbtasks.helpers import row_of
from tests.live import wait_until
from tests.testapp.models import TaskRun

pytestmark = pytest.mark.process

HEARTBEAT_TIMEOUT = 2.0  # seconds: tests/task_settings.py


def pulse_pid(worker) -> int:
    found = wait_until(
        lambda: re.search(r"heartbeat process (\d+) started", worker.output()),
        timeout=60,
        what="the heartbeat process to start",
    )
    return int(found.group(1))


def gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie not reaped yet counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[0] == b"Z"
    except FileNotFoundError:
        return True


def errors_of(result) -> list[str]:
    result.refresh()
    return [error.exception_class_path for error in result.errors]


def test_a_task_holding_the_gil_past_the_timeout_keeps_its_worker_alive(start_worker):
    if connection.vendor == "sqlite":
        pytest.skip(
            "SQLite has one write lock per database: a task that takes the GIL while its "
            "own worker's thread is inside a write transaction holds that lock too, and "
            "every writer, the heartbeat process included, waits (docs/reliability.md)"
        )
    runner = start_worker("--queue", "default", "--threads", "1")
    start_worker("--queue", "other")  # looks for lost workers every 200 ms
    result = control_tasks.holds_the_gil.enqueue("gil", HEARTBEAT_TIMEOUT * 3)

    wait_until(
        lambda: row_of(result).status in {TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED},
        timeout=120,
        what="the task to finish",
    )
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL, (errors_of(result), runner.output())
    assert result.return_value > HEARTBEAT_TIMEOUT  # it did hold the GIL that long
    assert result.attempts == 1
    assert errors_of(result) == []
    assert TaskRun.objects.filter(key="gil").count() == 1
    assert "presumed lost" not in runner.output()


def test_without_the_heartbeat_process_the_same_task_makes_its_worker_look_lost(start_worker):
    # What the test above guards against: the heartbeat thread alone is starved.
    if connection.vendor == "sqlite":
        # The control runs where its test runs: on SQLite the starved worker may
        # hold the one write lock, so that the others cannot even record it lost.
        pytest.skip("the control of a test skipped on SQLite (see the test above)")
    start_worker("--queue", "default", "--threads", "1", "--no-heartbeat-process")
    start_worker("--queue", "other")
    result = control_tasks.holds_the_gil.enqueue("gil", HEARTBEAT_TIMEOUT * 3)

    wait_until(
        lambda: "dbtasks.exceptions.WorkerLost" in errors_of(result),
        timeout=120,
        what="the starved worker to be taken for lost",
    )


def test_the_heartbeat_process_exits_with_a_killed_worker(start_worker):
    worker = start_worker("--threads", "1")
    worker.wait_registered()
    pid = pulse_pid(worker)
    assert not gone(pid)

    worker.send(signal.SIGKILL)
    # Its stdin, a pipe from the worker, reads end of file: it exits at once.
    wait_until(lambda: gone(pid), timeout=30, what="the heartbeat process to exit")


def test_a_paused_worker_is_recovered_and_fenced_when_it_resumes(start_worker):
    paused = start_worker("--queue", "default", "--threads", "1")
    result = control_tasks.checks_until_fenced.enqueue("paused")
    wait_until(
        lambda: TaskRun.objects.filter(key="paused:1").exists(),
        timeout=60,
        what="attempt 1 to start",
    )
    assert TaskRun.objects.get(key="paused:1").pid == paused.pid

    paused.send(signal.SIGSTOP)
    try:
        # Its heartbeat process stops beating too: the other worker recovers
        # the attempt and runs the retry.
        start_worker("--queue", "default")
        wait_until(
            lambda: row_of(result).status == TaskResultStatus.SUCCESSFUL,
            timeout=120,
            what="the retry to succeed elsewhere",
        )
        assert errors_of(result) == ["dbtasks.exceptions.WorkerLost"]
    finally:
        paused.send(signal.SIGCONT)
    wait_until(
        lambda: f"Task id={result.id} attempt 1 was closed by someone else" in paused.output(),
        timeout=60,
        what="the resumed worker to fence its attempt",
    )
    wait_until(
        lambda: "its outcome is discarded" in paused.output(),
        timeout=60,
        what="the stopped task's outcome to be discarded",
    )
    assert row_of(result).status == TaskResultStatus.SUCCESSFUL
    assert paused.running  # resumed, and still working
