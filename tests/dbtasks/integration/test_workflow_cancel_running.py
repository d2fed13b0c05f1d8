"""Cancelling a workflow while a member runs: that member is stopped, nothing after it runs."""

from __future__ import annotations

from dbtasks import workflows
from tests import tasks
from tests.dbtasks import control_tasks
from tests.dbtasks.helpers import wait_for_status
from tests.live import wait_until
from tests.testapp.models import TaskRun


def test_a_running_member_is_stopped_and_its_callback_never_runs(threaded_worker):
    run = workflows.group(
        [workflows.call(control_tasks.checks_until_cancelled, "member"), tasks.noop],
        then=workflows.call(tasks.tally, "never"),
    ).enqueue()
    running, quick, callback = run.results
    wait_until(lambda: TaskRun.objects.filter(key="member").exists(), timeout=30, what="the member")
    wait_for_status(quick, "SUCCESSFUL", timeout=30)

    assert workflows.cancel(run.id) == 1  # the callback; the running member is asked to stop

    wait_for_status(running, "FAILED", timeout=30)
    results = run.refresh().results
    assert [result.status for result in results] == ["FAILED", "SUCCESSFUL", "FAILED"]
    assert results[0].errors[-1].exception_class_path == "dbtasks.exceptions.TaskCancelled"
    assert results[0].attempts == 1  # stopped, not retried
    assert f"workflow {run.id} was cancelled" in results[2].errors[0].traceback
    assert results[2].attempts == 0
    assert not TaskRun.objects.filter(key="never").exists()
    assert callback.id == results[2].id
