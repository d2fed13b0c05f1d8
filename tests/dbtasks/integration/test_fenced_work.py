"""Fenced work: a task whose attempt was closed under it (its worker presumed lost)
is asked to stop, the worker says so, the retry runs and the late outcome is discarded."""

from __future__ import annotations

import logging

from django.utils import timezone

from dbtasks.exceptions import WorkerLost
from dbtasks.worker.outcomes import record_attempt
from tests.dbtasks import control_tasks
from tests.dbtasks.helpers import default_backend
from tests.dbtasks.helpers import row_of
from tests.dbtasks.helpers import wait_for_status
from tests.live import wait_until
from tests.testapp.models import TaskRun


def close_as_lost(result) -> None:
    """What lost-worker recovery does to an attempt whose worker stopped heartbeating."""
    row = row_of(result)
    policy = default_backend().config.policy(row.queue_name, row.task_path)
    error = WorkerLost(f"Worker {row.worker_id!r} stopped heartbeating (test).")
    assert row.last_attempted_at is not None  # it is running
    closed = record_attempt(
        row, worker_id=row.worker_id, policy=policy, now=timezone.now(), error=error
    )
    assert closed is not None


def test_a_task_whose_attempt_was_closed_under_it_is_asked_to_stop(threaded_worker, caplog):
    caplog.set_level(logging.INFO, logger="dbtasks")
    result = control_tasks.checks_until_fenced.enqueue("fenced")
    wait_until(
        lambda: TaskRun.objects.filter(key="fenced:1").exists(),
        timeout=30,
        what="attempt 1 to start",
    )

    close_as_lost(result)

    wait_for_status(result, "SUCCESSFUL", timeout=30)
    result.refresh()
    assert result.return_value == "attempt 2 done"
    assert [error.exception_class_path for error in result.errors] == [
        "dbtasks.exceptions.WorkerLost"
    ]
    # Attempt 1 stopped: its thread reached the outcome write, which was refused.
    wait_until(
        lambda: "its outcome is discarded" in caplog.text,
        timeout=30,
        what="attempt 1's late outcome to be discarded",
    )
    fenced = [
        record.getMessage()
        for record in caplog.records
        if record.levelno == logging.WARNING and "asking it to stop" in record.getMessage()
    ]
    expected = (
        f"Task id={result.id} attempt 1 was closed by someone else (lost-worker recovery: "
        "dbtasks.exceptions.WorkerLost: "
        f"Worker {threaded_worker.id!r} stopped heartbeating (test).); "
        "asking it to stop, its outcome will be discarded"
    )
    assert fenced == [expected]
    discarded = [
        r.getMessage() for r in caplog.records if "its outcome is discarded" in r.getMessage()
    ]
    assert len(discarded) == 1, discarded
    assert "attempt 1 was closed by someone else (lost-worker recovery" in discarded[0]
    assert TaskRun.objects.filter(key__startswith="fenced:").count() == 2
    assert row_of(result).attempt_count == 2
