"""The django.tasks contract, as DatabaseBackend honours it (enqueue, get_result, refresh...)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.db import transaction
from django.utils import timezone

from dbtasks.compat import InvalidTask
from dbtasks.compat import TaskResultDoesNotExist
from dbtasks.compat import TaskResultStatus
from dbtasks.compat import task_backends
from dbtasks.exceptions import InvalidTaskArguments
from dbtasks.models import SCHEDULED
from dbtasks.models import DBTaskResult
from tests import tasks
from tests.conftest import run_worker
from tests.dbtasks.helpers import Clock
from tests.dbtasks.helpers import row_of
from tests.dbtasks.helpers import run_worker_at
from tests.testapp.models import TaskRun

WORKER_ID = re.compile(r".+:\d+:[0-9a-f]{8}")


def test_enqueue_returns_a_ready_result(db):
    before = timezone.now()
    result = tasks.echo.enqueue(1, "é", flag=True)

    assert result.status == TaskResultStatus.READY
    assert result.id == str(DBTaskResult.objects.get().pk)
    assert result.task.func is tasks.echo.func
    assert result.backend == "default"
    assert result.args == [1, "é"]
    assert result.kwargs == {"flag": True}
    assert result.enqueued_at is not None
    assert before <= result.enqueued_at <= timezone.now()
    assert (result.started_at, result.finished_at, result.last_attempted_at) == (None, None, None)
    assert (result.attempts, result.worker_ids, result.errors) == (0, [], [])
    with pytest.raises(ValueError, match="Task has not finished yet"):
        _ = result.return_value


def test_the_row_keeps_what_the_task_was_enqueued_with(db):
    run_after = timezone.now() + timedelta(hours=1)
    result = tasks.echo.using(priority=7, queue_name="low_priority", run_after=run_after).enqueue(
        [1, 2], key={"nested": None}
    )

    row = row_of(result)
    assert row.task_path == "tests.tasks.echo"
    assert row.arguments == {"args": [[1, 2]], "kwargs": {"key": {"nested": None}}}
    assert (row.priority, row.queue_name, row.run_after) == (7, "low_priority", run_after)
    assert row.available_after == run_after
    assert row.attempt_count == 0


def test_get_result_reads_the_row_back(db):
    enqueued = tasks.echo.using(priority=3, queue_name="other").enqueue("a", b=2)

    result = tasks.echo.get_result(enqueued.id)

    assert result.id == enqueued.id
    assert result.status == TaskResultStatus.READY
    assert result.task.func is tasks.echo.func
    assert (result.task.priority, result.task.queue_name) == (3, "other")
    assert (result.args, result.kwargs) == (["a"], {"b": 2})
    assert result.enqueued_at == enqueued.enqueued_at
    assert task_backends["default"].get_result(enqueued.id).id == enqueued.id


def test_refresh_sees_the_work_of_the_worker(transactional_db):
    result = tasks.echo.enqueue(1, "é", a=2)

    run_worker()
    result.refresh()

    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == {"args": [1, "é"], "kwargs": {"a": 2}}
    assert result.enqueued_at is not None
    assert result.started_at is not None
    assert result.finished_at is not None
    assert result.enqueued_at <= result.started_at <= result.finished_at
    assert result.last_attempted_at == result.started_at
    assert result.attempts == 1
    assert len(result.worker_ids) == 1
    assert WORKER_ID.fullmatch(result.worker_ids[0])
    assert result.errors == []


def test_a_failure_keeps_the_exception_class_path_and_traceback(transactional_db):
    result = tasks.always_fails.enqueue("boom")

    run_worker()
    result.refresh()

    # tests/settings.py: max_attempts 3, no backoff, so one --oneshot run tries all three.
    assert result.status == TaskResultStatus.FAILED
    assert result.attempts == 3
    assert len(result.errors) == 3
    for error in result.errors:
        assert error.exception_class_path == "builtins.ValueError"
        assert error.exception_class is ValueError
        assert error.traceback.startswith("Traceback (most recent call last):\n")
        assert 'tests/tasks.py", line' in error.traceback
        assert error.traceback.endswith("ValueError: boom\n")
    assert result.finished_at is not None
    with pytest.raises(ValueError, match="Task failed"):
        _ = result.return_value


def test_higher_priority_runs_first(transactional_db):
    for key, priority in [("low", -5), ("mid-1", 0), ("high", 50), ("mid-2", 0), ("top", 100)]:
        tasks.record_run.using(priority=priority).enqueue(key)

    run_worker("--threads", "1")

    assert list(TaskRun.objects.order_by("id").values_list("key", flat=True)) == [
        "top",
        "high",
        "mid-1",
        "mid-2",
        "low",
    ]


def test_run_after_is_respected(transactional_db):
    clock = Clock()
    later = tasks.echo.using(run_after=clock.now + timedelta(minutes=10)).enqueue("later")
    now = tasks.echo.using(run_after=clock.now - timedelta(minutes=10)).enqueue("now")

    run_worker_at(clock)
    assert row_of(now).status == TaskResultStatus.SUCCESSFUL
    assert row_of(later).status == SCHEDULED

    clock.advance(minutes=9, seconds=59)
    run_worker_at(clock)
    assert row_of(later).status == SCHEDULED

    clock.advance(seconds=1)
    run_worker_at(clock)
    assert row_of(later).status == TaskResultStatus.SUCCESSFUL


def test_a_task_that_takes_context_gets_the_attempt_number(transactional_db):
    result = tasks.report_context.enqueue()

    run_worker()
    result.refresh()

    assert result.return_value == {"attempt": 1, "id": result.id}


def test_async_tasks_run(transactional_db):
    result = tasks.async_double.enqueue(21)

    run_worker()
    result.refresh()

    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 42


def test_the_async_api_works(transactional_db):
    result = async_to_sync(tasks.echo.aenqueue)("x")

    fetched = async_to_sync(tasks.echo.aget_result)(result.id)

    assert fetched.id == result.id
    assert fetched.status == TaskResultStatus.READY


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        pytest.param((timezone.now(),), {}, id="datetime"),
        pytest.param((), {"ids": {1, 2}}, id="set"),
        pytest.param(({1: "a"},), {}, id="int-dict-key"),
        pytest.param((float("nan"),), {}, id="nan"),
        pytest.param(("a\x00",), {}, id="nul"),
    ],
)
def test_arguments_that_do_not_survive_json_are_refused_with_no_row(db, args, kwargs):
    with pytest.raises(InvalidTaskArguments) as excinfo:
        tasks.echo.enqueue(*args, **kwargs)

    assert isinstance(excinfo.value, InvalidTask)
    assert str(excinfo.value).startswith("Task arguments ")
    assert str(excinfo.value).endswith(
        " Pass ids, strings and numbers, and load objects inside the task."
    )
    assert not DBTaskResult.objects.exists()


def test_an_invalid_task_is_refused_before_anything_is_written(db):
    with pytest.raises(InvalidTask, match=r"Queue 'nowhere' is not valid for backend\."):
        tasks.echo.using(queue_name="nowhere").enqueue()

    assert not DBTaskResult.objects.exists()


@pytest.mark.parametrize(
    "result_id",
    ["0", "-1", "abc", "", "1.0", "1e3", "9" * 30, "9223372036854775808", "None", "9" * 5000],
)
def test_an_unknown_or_malformed_id_raises_task_result_does_not_exist(db, result_id):
    tasks.echo.enqueue()

    with pytest.raises(TaskResultDoesNotExist):
        tasks.echo.get_result(result_id)


def arabic_indic(digits):
    return "".join(chr(0x660 + int(digit)) for digit in digits)


@pytest.mark.parametrize(
    "spell",
    [
        pytest.param(lambda pk: f" {pk}", id="leading-space"),
        pytest.param(lambda pk: f"{pk}\n", id="trailing-newline"),
        pytest.param(lambda pk: f"+{pk}", id="plus-sign"),
        pytest.param(lambda pk: f"0{pk}", id="leading-zero"),
        pytest.param(lambda pk: f"0_{pk}", id="underscore"),
        pytest.param(arabic_indic, id="arabic-indic-digits"),
    ],
)
def test_only_the_exact_id_finds_a_result(db, spell):
    result = tasks.echo.enqueue()
    assert int(spell(result.id)) == int(result.id)  # int() would find the row

    with pytest.raises(TaskResultDoesNotExist):
        tasks.echo.get_result(spell(result.id))


def test_a_deleted_result_does_not_exist(db):
    result = tasks.echo.enqueue()
    DBTaskResult.objects.all().delete()

    with pytest.raises(TaskResultDoesNotExist):
        result.refresh()


def test_a_task_enqueued_in_a_rolled_back_transaction_does_not_exist(transactional_db):
    with transaction.atomic():
        result = tasks.echo.enqueue("never")
        assert DBTaskResult.objects.count() == 1  # visible inside the transaction
        transaction.set_rollback(True)

    assert not DBTaskResult.objects.exists()
    with pytest.raises(TaskResultDoesNotExist):
        tasks.echo.get_result(result.id)


def test_a_task_enqueued_in_a_committed_transaction_exists(transactional_db):
    with transaction.atomic():
        result = tasks.echo.enqueue("kept")

    assert tasks.echo.get_result(result.id).args == ["kept"]
