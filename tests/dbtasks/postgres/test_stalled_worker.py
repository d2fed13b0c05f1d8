"""A worker that cannot record an outcome for longer than the heartbeat timeout gives up.

Its heartbeat would otherwise keep its attempt RUNNING for as long as the
database keeps it from writing (a server refusing connections, a lock). Here
the test holds the row's lock while the task ends: the worker's close waits,
and after ``heartbeat_timeout`` (2 s in the test settings) the worker stops
heartbeating and exits with ``EXIT_STALLED``. Another worker then recovers
the attempt (``WorkerLost``) and runs the task again: the one documented
duplicate, a run whose outcome was never recorded.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.db import transaction

from dbtasks.models import SUCCESSFUL
from dbtasks.models import DBTaskResult
from dbtasks.models import DBWorker
from dbtasks.worker import EXIT_STALLED
from tests import tasks
from tests.live import wait_until
from tests.testapp.models import TaskRun

pytestmark = pytest.mark.process


def test_a_worker_that_cannot_record_stops_heartbeating_and_its_attempt_is_recovered(
    start_worker,
):
    stalling = start_worker("--id", "stalling", env={"PGAPPNAME": "dbtasks-stalling"})
    stalling.wait_registered()
    result = tasks.record_run_and_wait.enqueue("stalled", 1.0)
    wait_until(lambda: TaskRun.objects.filter(key="stalled").exists(), timeout=30, what="the run")

    with transaction.atomic():
        DBTaskResult.objects.select_for_update().get(pk=result.id)  # the close will wait
        assert stalling.wait(timeout=60) == EXIT_STALLED
        assert not DBWorker.objects.filter(pid=stalling.pid).exists()
        # Its close, still queued for the lock, must not land once the lock is free.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'dbtasks-stalling'"
            )

    assert "stops heartbeating and exits" in stalling.output()
    start_worker().wait_registered()
    wait_until(
        lambda: DBTaskResult.objects.get(pk=result.id).status == SUCCESSFUL,
        timeout=60,
        what="another worker to recover the attempt and run the task",
    )
    row = DBTaskResult.objects.get(pk=result.id)
    first = row.attempts.get(number=1)
    assert first.exception_class_path == "dbtasks.exceptions.WorkerLost"
    assert row.attempt_count == 2
    assert TaskRun.objects.filter(key="stalled").count() == 2
