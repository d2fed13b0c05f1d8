"""2,000 tasks, 4 worker processes: every task runs exactly once."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.db import transaction
from django.db.models import Count

from dbtasks.compat import TaskResultStatus
from dbtasks.models import DBTaskAttempt
from dbtasks.models import DBTaskResult
from tests import tasks
from tests.ops_data import PATIENT_TIMEOUT
from tests.testapp.models import TaskRun

pytestmark = [pytest.mark.process, pytest.mark.slow]

TASKS = 2000
WORKERS = 4
# What is tested is that no two claims take the same row. With the test
# settings' 2 s heartbeat timeout, a loaded machine can starve a heartbeat and
# a worker is presumed lost: its tasks then run again, as they should
# (test_crash_recovery.py), which is not what this test is about.
PATIENT = {"heartbeat_timeout": PATIENT_TIMEOUT}


def test_every_task_runs_exactly_once(start_worker):
    with transaction.atomic():
        for n in range(TASKS):
            tasks.record_run.enqueue(f"task-{n}")

    started = time.monotonic()
    workers = [
        start_worker(
            "--oneshot", "--threads", "2", "--id", f"w{n}", options=PATIENT, log_level="WARNING"
        )
        for n in range(WORKERS)
    ]
    codes = [worker.wait(timeout=120) for worker in workers]
    elapsed = time.monotonic() - started

    assert codes == [0] * WORKERS
    assert TaskRun.objects.count() == TASKS
    duplicates = TaskRun.objects.values("key").annotate(runs=Count("id")).filter(runs__gt=1)
    assert list(duplicates) == []
    assert set(TaskRun.objects.values_list("key", flat=True)) == {f"task-{n}" for n in range(TASKS)}
    assert (
        DBTaskResult.objects.filter(status=TaskResultStatus.SUCCESSFUL, attempt_count=1).count()
        == TASKS
    )
    assert DBTaskAttempt.objects.count() == TASKS
    per_process = dict(
        TaskRun.objects.values_list("pid").annotate(runs=Count("id")).order_by("pid")
    )
    # The work was shared (a worker that starts late may find little left).
    assert len(per_process) >= 2, per_process
    print(  # noqa: T201
        f"{connection.vendor}: {TASKS} tasks, {WORKERS} processes x 2 threads, "
        f"{elapsed:.1f}s including start-up ({TASKS / elapsed:.0f} tasks/s); "
        f"runs per process: {sorted(per_process.values())}"
    )
