"""dbtasks.tasks.purge_expired_results: the retention purge as a (recurring) task."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from dbtasks.models import DBTaskResult
from dbtasks.tasks import purge_expired_results
from tests import tasks
from tests.conftest import run_worker


def test_the_purge_task_deletes_what_the_policy_says(transactional_db):
    old_done, new_done, old_waiting = (tasks.noop.enqueue() for _ in range(3))
    run_worker()
    long_ago = timezone.now() - dt.timedelta(days=30)
    DBTaskResult.objects.filter(pk=old_done.id).update(finished_at=long_ago)
    # Enqueued long ago and still waiting (for a run_after far ahead).
    DBTaskResult.objects.filter(pk=old_waiting.id).update(
        status="READY",
        finished_at=None,
        enqueued_at=long_ago,
        available_after=timezone.now() + dt.timedelta(days=365),
    )

    purge = purge_expired_results.enqueue()
    run_worker()

    purge.refresh()
    assert purge.status == "SUCCESSFUL"
    assert purge.return_value == {"finished": 1, "unfinished": 1}
    remaining = set(DBTaskResult.objects.values_list("pk", flat=True))
    assert remaining == {int(new_done.id), int(purge.id)}


def test_the_purge_task_refuses_a_backend_that_is_not_dbtasks(transactional_db):
    result = purge_expired_results.enqueue(backend="immediate")
    run_worker()

    result.refresh()
    assert result.status == "FAILED"
    assert "is not a dbtasks DatabaseBackend" in result.errors[-1].traceback
