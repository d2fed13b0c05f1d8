"""Cancelling a READY task: it never runs, and its result says why."""

from __future__ import annotations

import pytest

from dbtasks.compat import TaskResultDoesNotExist
from tests import tasks
from tests.conftest import run_worker
from tests.dbtasks.helpers import default_backend
from tests.testapp.models import TaskRun


def test_a_cancelled_task_never_runs(transactional_db):
    result = tasks.record_run.enqueue("cancelled")

    assert default_backend().cancel(result.id) is True
    run_worker()

    result.refresh()
    assert result.status == "FAILED"
    assert result.attempts == 0
    assert result.finished_at is not None
    assert [error.exception_class_path for error in result.errors] == [
        "dbtasks.exceptions.TaskCancelled"
    ]
    assert "before it ran" in result.errors[0].traceback
    assert not TaskRun.objects.filter(key="cancelled").exists()


def test_running_or_finished_tasks_are_not_cancelled(transactional_db):
    result = tasks.noop.enqueue()
    run_worker()

    assert default_backend().cancel(result.id) is False
    result.refresh()
    assert result.status == "SUCCESSFUL"


@pytest.mark.django_db
@pytest.mark.parametrize("bad_id", ["0", "abc", "-1", "999999"])
def test_cancelling_an_unknown_id_raises_does_not_exist(bad_id):
    with pytest.raises(TaskResultDoesNotExist):
        default_backend().cancel(bad_id)


def test_a_cancelled_task_can_be_requeued(transactional_db):
    from django.utils import timezone

    from dbtasks.models import DBTaskResult

    result = tasks.noop.enqueue()
    default_backend().cancel(result.id)

    assert DBTaskResult.objects.filter(pk=result.id).requeue_failed(timezone.now()) == 1
    run_worker()

    result.refresh()
    assert result.status == "SUCCESSFUL"
    assert result.errors == []
