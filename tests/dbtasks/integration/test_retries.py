"""Retries: max_attempts counts every run, backoff_factor ** n seconds between them."""

from __future__ import annotations

from datetime import timedelta

from dbtasks.compat import TaskResultStatus
from dbtasks.models import SCHEDULED
from dbtasks.models import DBTaskAttempt
from tests import tasks
from tests.conftest import run_worker
from tests.dbtasks.helpers import Clock
from tests.dbtasks.helpers import override_options
from tests.dbtasks.helpers import row_of
from tests.dbtasks.helpers import run_worker_at


def test_fails_twice_then_succeeds_on_the_third_and_last_attempt(transactional_db):
    # tests/settings.py: max_attempts 3, backoff_factor 0 (retry at once).
    result = tasks.fails_until_attempt.enqueue(succeed_on=3)

    run_worker()
    result.refresh()

    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 3
    assert result.attempts == 3
    assert len(result.errors) == 2
    assert [error.exception_class_path for error in result.errors] == ["builtins.RuntimeError"] * 2
    assert result.errors[0].traceback.endswith("RuntimeError: attempt 1 fails\n")
    assert result.errors[1].traceback.endswith("RuntimeError: attempt 2 fails\n")
    outcomes = DBTaskAttempt.objects.filter(result_id=int(result.id)).values_list(
        "number", "outcome"
    )
    assert list(outcomes) == [(1, "FAILED"), (2, "FAILED"), (3, "SUCCESSFUL")]


def test_waits_backoff_factor_to_the_power_of_n_seconds_between_attempts(
    transactional_db, settings
):
    override_options(settings, max_attempts=4, backoff_factor=3)
    result = tasks.always_fails.enqueue()
    clock = Clock()  # from now on time only moves when the test says so

    waits = []
    for _ in range(3):
        run_worker_at(clock)  # runs one attempt, then nothing is ready
        row = row_of(result)
        assert row.status == SCHEDULED
        last = row.attempts.order_by("number").last()
        assert last is not None
        waits.append((row.available_after - last.stopped_at).total_seconds())

        # A moment before the backoff is over the task is not claimed...
        clock.now = row.available_after - timedelta(microseconds=1)
        run_worker_at(clock)
        assert row_of(result).attempt_count == row.attempt_count
        # ...and from then on it is.
        clock.now = row.available_after
    assert waits == [3, 9, 27]

    run_worker_at(clock)
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.attempts == 4


def test_a_queue_override_applies_to_that_queue_only(transactional_db):
    # tests/settings.py: max_attempts 3, and 5 for low_priority.
    default = tasks.always_fails.enqueue()
    low = tasks.always_fails.using(queue_name="low_priority").enqueue()
    other = tasks.always_fails.using(queue_name="other").enqueue()

    run_worker()

    assert [row_of(r).attempt_count for r in (default, low, other)] == [3, 5, 3]
    assert {row_of(r).status for r in (default, low, other)} == {TaskResultStatus.FAILED}


def test_a_queue_override_of_the_backoff_applies_to_that_queue_only(transactional_db, settings):
    override_options(
        settings, max_attempts=2, backoff_factor=3, queues={"low_priority": {"backoff_factor": 5}}
    )
    default = tasks.always_fails.enqueue()
    low = tasks.always_fails.using(queue_name="low_priority").enqueue()
    clock = Clock()

    run_worker_at(clock)

    assert row_of(default).available_after == clock.now + timedelta(seconds=3)
    assert row_of(low).available_after == clock.now + timedelta(seconds=5)


def test_max_attempts_1_fails_at_once(transactional_db, settings):
    override_options(settings, max_attempts=1)
    result = tasks.always_fails.enqueue()

    run_worker()
    result.refresh()

    assert result.status == TaskResultStatus.FAILED
    assert result.attempts == 1
    assert len(result.errors) == 1


def test_permanent_failure_fails_at_once(transactional_db):
    result = tasks.fails_permanently.enqueue()

    run_worker()
    result.refresh()

    assert result.status == TaskResultStatus.FAILED
    assert result.attempts == 1
    assert result.errors[0].exception_class_path == "dbtasks.exceptions.PermanentFailure"
    assert result.errors[0].traceback.endswith("PermanentFailure: retrying cannot help\n")


def test_system_exit_in_a_task_is_a_failure_not_the_end_of_the_worker(transactional_db):
    exits = tasks.raises_system_exit.enqueue()
    after = tasks.echo.enqueue("still working")

    run_worker("--threads", "1")

    assert row_of(exits).status == TaskResultStatus.FAILED
    assert exits.task.get_result(exits.id).errors[0].exception_class_path == "builtins.SystemExit"
    assert row_of(after).status == TaskResultStatus.SUCCESSFUL


def test_a_return_value_that_is_not_json_fails_the_attempt(transactional_db):
    result = tasks.returns_unserializable.enqueue()

    run_worker()
    result.refresh()

    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class_path == "builtins.TypeError"
    assert result.errors[0].traceback.endswith(
        "TypeError: The task's return value cannot be stored as JSON: "
        "Unsupported type: <class 'object'>.\n"
    )
