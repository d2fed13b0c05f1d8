"""A worker whose database connections are killed (pg_terminate_backend) reconnects and goes on."""

from __future__ import annotations

import signal

import pytest
from django.db import connection

from dbtasks.compat import TaskResultStatus
from dbtasks.models import DBTaskResult
from tests import tasks
from tests.dbtasks.helpers import row_of
from tests.live import wait_until
from tests.testapp.models import TaskRun

pytestmark = pytest.mark.process

# Polling so slow that only LISTEN/NOTIFY can make a worker pick a task up in time.
SLOW_POLLING = ("--delay-min", "30000", "--delay-max", "30000")


def worker_sessions():
    """The pids and last queries of every other session on the test database."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, query FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return dict(cursor.fetchall())


def terminate_worker_sessions():
    """Kill every other session on the test database, as a failover or a DBA would."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def at_least_three_sessions():
    sessions = set(worker_sessions())
    return sessions if len(sessions) >= 3 else None


def listening_again(killed):
    """Whether a new session (not one of ``killed``) is LISTENing."""
    return any(
        pid not in killed and query == "LISTEN dbtasks" for pid, query in worker_sessions().items()
    )


def run_and_wait(key, timeout=30):
    result = tasks.record_run.enqueue(key)
    wait_until(
        lambda: row_of(result).status == TaskResultStatus.SUCCESSFUL,
        timeout=timeout,
        what=f"task {key} to succeed",
    )
    return row_of(result)


def test_an_idle_worker_reconnects_and_goes_on(start_worker):
    worker = start_worker(*SLOW_POLLING)
    worker.wait_registered()
    run_and_wait("before")

    for round_ in range(3):
        # The main loop, the heartbeat process and the listener (an idle task
        # thread has closed its connection), each back after the last round.
        killed = wait_until(at_least_three_sessions, timeout=30, what="the worker's sessions")
        assert terminate_worker_sessions() >= 3
        wait_until(
            lambda: listening_again(killed),  # noqa: B023 - called before the loop goes on
            timeout=30,
            what="the listener to reconnect",
        )

        # Picked up through NOTIFY (polling is every 30 s), on the first attempt:
        # the task thread found its connection dead before the task ran.
        row = run_and_wait(f"after-{round_}")
        assert row.attempt_count == 1
        assert worker.running

    worker.send(signal.SIGTERM)
    assert worker.wait() == 0


def test_a_busy_worker_reconnects_between_tasks(start_worker):
    results = [tasks.record_run.enqueue(f"task-{n}", seconds=0.05) for n in range(40)]
    worker = start_worker("--threads", "2")
    worker.wait_registered()

    def succeeded():
        return DBTaskResult.objects.filter(status=TaskResultStatus.SUCCESSFUL).count()

    for done in (5, 15, 25):
        # Pull the plug while it works its way through the queue.
        # The lambda is called before the loop goes on.
        wait_until(lambda: succeeded() >= done, timeout=60, what=f"{done} tasks")  # noqa: B023
        # Those of the last round back (task threads connect only while busy).
        wait_until(at_least_three_sessions, timeout=30, what="the worker's sessions")
        assert terminate_worker_sessions() >= 3

    wait_until(lambda: succeeded() == len(results), timeout=90, what="every task to succeed")
    assert worker.running
    # Every task ran to success: one whose own query met a killed connection
    # was retried (max_attempts 3), none was lost.
    assert set(TaskRun.objects.values_list("key", flat=True)) == {f"task-{n}" for n in range(40)}
    worker.send(signal.SIGTERM)
    assert worker.wait() == 0
