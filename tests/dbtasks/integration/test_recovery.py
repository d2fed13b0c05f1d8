"""Lost workers: their RUNNING attempts are closed as WorkerLost, once, and retried."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from dbtasks.compat import TaskResultStatus
from dbtasks.models import DBTaskAttempt
from dbtasks.models import DBTaskResult
from dbtasks.models import DBWorker
from dbtasks.worker.outcomes import record_attempt
from dbtasks.worker.recovery import recover_lost_tasks
from tests.dbtasks.helpers import default_backend
from tests.dbtasks.helpers import override_options
from tests.dbtasks.helpers import race
from tests.dbtasks.helpers import running_on

TIMEOUT = timedelta(seconds=2)  # tests/settings.py: heartbeat_timeout


def recover(now=None):
    backend = default_backend()
    return recover_lost_tasks(
        db="default", backend_name="default", config=backend.config, now=now or timezone.now()
    )


def test_the_attempt_of_a_lost_worker_is_closed_and_retried(db):
    result = running_on("dead:1:aa", heartbeat_age=TIMEOUT + timedelta(seconds=1))

    assert recover() == 1

    result.refresh()
    assert result.status == TaskResultStatus.READY
    assert result.attempts == 1
    assert result.worker_ids == ["dead:1:aa"]
    (error,) = result.errors
    assert error.exception_class_path == "dbtasks.exceptions.WorkerLost"
    assert error.traceback == (
        "dbtasks.exceptions.WorkerLost: Worker 'dead:1:aa' stopped heartbeating while running "
        "attempt 1 (no heartbeat for 0:00:02).\n"
    )
    # The dead worker is forgotten once its attempts are closed.
    assert not DBWorker.objects.exists()


def test_with_no_attempt_left_the_task_fails(db, settings):
    override_options(settings, max_attempts=2)
    result = running_on("dead:1:aa", heartbeat_age=TIMEOUT * 2, attempt=2)

    assert recover() == 1

    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.finished_at is not None


def test_a_live_worker_is_left_alone(db):
    result = running_on("alive:1:aa", heartbeat_age=TIMEOUT - timedelta(milliseconds=500))

    assert recover() == 0

    result.refresh()
    assert result.status == TaskResultStatus.RUNNING
    assert DBWorker.objects.filter(worker_id="alive:1:aa").exists()


def test_a_worker_that_never_registered_is_lost_too(db):
    result = running_on("ghost:1:aa", heartbeat_age=TIMEOUT * 2)
    DBWorker.objects.all().delete()

    assert recover() == 1
    assert DBTaskResult.objects.get(pk=result.id).status == TaskResultStatus.READY


def test_recovering_twice_closes_the_attempt_once(db):
    running_on("dead:1:aa", heartbeat_age=TIMEOUT * 2)

    assert recover() == 1
    assert recover() == 0
    assert DBTaskAttempt.objects.count() == 1


def test_workers_recovering_at_once_close_each_attempt_once(transactional_db):
    for n in range(5):
        running_on(f"dead:{n}:aa", heartbeat_age=TIMEOUT * 2)
    closed = race(recover)

    assert sum(closed) == 5
    assert DBTaskAttempt.objects.count() == 5
    assert set(DBTaskAttempt.objects.values_list("number", flat=True)) == {1}
    assert set(DBTaskResult.objects.values_list("status", flat=True)) == {"READY"}


def test_a_late_outcome_from_the_lost_worker_is_discarded(db):
    result = running_on("slow:1:aa", heartbeat_age=TIMEOUT * 2)
    row = DBTaskResult.objects.get(pk=result.id)
    recover()

    # The worker was only slow: its outcome arrives after recovery closed the attempt.
    policy = default_backend().config.policy("default")
    late = record_attempt(row, worker_id="slow:1:aa", policy=policy, now=timezone.now())

    assert late is None
    assert DBTaskResult.objects.get(pk=result.id).status == TaskResultStatus.READY
    assert DBTaskAttempt.objects.get().exception_class_path == "dbtasks.exceptions.WorkerLost"
