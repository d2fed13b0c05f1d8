"""Rows a worker cannot run as they are: they fail, they never run, the worker goes on.

Such rows are what an older deploy leaves behind (a task renamed or removed,
its arguments changed) or what a hand edit of the table makes: enqueue()
itself never writes them.
"""

from __future__ import annotations

import pytest
from django.utils import timezone

from dbtasks.compat import TaskResultDoesNotExist
from dbtasks.compat import TaskResultStatus
from dbtasks.compat import task_backends
from dbtasks.models import DBTaskResult
from tests import tasks
from tests.conftest import run_worker
from tests.dbtasks.helpers import row_of
from tests.testapp.models import TaskRun


def corrupt_row(task_path, *args, arguments=None):
    """A row as an older deploy would have left it: what enqueue() can no longer write."""
    now = timezone.now()
    return DBTaskResult.objects.create(
        task_path=task_path,
        backend_name="default",
        queue_name="default",
        arguments={"args": list(args), "kwargs": {}} if arguments is None else arguments,
        enqueued_at=now,
        available_after=now,
    )


@pytest.mark.parametrize(
    ("task_path", "error_class", "message"),
    [
        pytest.param(
            "tests.tasks.renamed_task",
            "dbtasks.exceptions.TaskFunctionMissing",
            "TaskFunctionMissing: Task function 'tests.tasks.renamed_task' cannot be imported: "
            'Module "tests.tasks" does not define a "renamed_task" attribute/class',
            id="function-removed",
        ),
        pytest.param(
            "tests.removed_module.some_task",
            "dbtasks.exceptions.TaskFunctionMissing",
            "TaskFunctionMissing: Task function 'tests.removed_module.some_task' cannot be "
            "imported: No module named 'tests.removed_module'",
            id="module-removed",
        ),
        pytest.param(
            "tests.tasks.not_a_task",
            "django.core.exceptions.SuspiciousOperation",
            "SuspiciousOperation: 'tests.tasks.not_a_task' is not a Task.",
            id="not-a-task",
        ),
    ],
)
def test_fails_with_an_error_that_says_why(transactional_db, task_path, error_class, message):
    before = tasks.record_run.enqueue("before")
    corrupt = corrupt_row(task_path, "corrupt")
    after = tasks.record_run.enqueue("after")

    run_worker("--threads", "1")

    corrupt.refresh_from_db()
    assert corrupt.status == TaskResultStatus.FAILED
    assert corrupt.finished_at is not None
    if error_class == "dbtasks.exceptions.TaskFunctionMissing":
        # A missing function may come back with the next deploy (an old
        # worker met a new task): the retry policy applies, max_attempts 3.
        assert corrupt.attempt_count == 3
    else:
        # Not a Task: retrying cannot help, one attempt.
        assert corrupt.attempt_count == 1
    attempt = corrupt.attempts.last()
    assert attempt.exception_class_path == error_class
    assert attempt.traceback.rstrip("\n").endswith(message)
    # Nothing ran it, and the worker went on with the next task.
    assert set(TaskRun.objects.values_list("key", flat=True)) == {"before", "after"}
    assert row_of(before).status == row_of(after).status == TaskResultStatus.SUCCESSFUL


@pytest.mark.parametrize("task_path", ["tests.tasks.renamed_task", "tests.tasks.not_a_task"])
def test_its_result_cannot_be_read_back(db, task_path):
    corrupt = corrupt_row(task_path)

    with pytest.raises(TaskResultDoesNotExist):
        task_backends["default"].get_result(str(corrupt.pk))


# --- Arguments the function cannot take ---------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param(
            {"args": [], "kwargs": {}},
            "TypeError: record_run() missing 1 required positional argument: 'key'",
            id="argument-missing",
        ),
        pytest.param(
            {"args": ["corrupt"], "kwargs": {"colour": "red"}},
            "TypeError: record_run() got an unexpected keyword argument 'colour'",
            id="unknown-keyword",
        ),
        pytest.param(
            {"args": ["corrupt", 0, 1, 2], "kwargs": {}},
            "TypeError: record_run() takes from 1 to 2 positional arguments but 4 were given",
            id="too-many",
        ),
    ],
)
def test_arguments_the_function_does_not_take_fail_that_task_not_the_worker(
    transactional_db, arguments, message
):
    before = tasks.record_run.enqueue("before")
    corrupt = corrupt_row("tests.tasks.record_run", arguments=arguments)
    after = tasks.record_run.enqueue("after")

    run_worker("--threads", "1")

    corrupt.refresh_from_db()
    assert corrupt.status == TaskResultStatus.FAILED
    attempts = list(corrupt.attempts.all())
    assert attempts  # retried as the queue's policy says (a TypeError is not permanent)
    for attempt in attempts:
        assert attempt.exception_class_path == "builtins.TypeError"
        assert attempt.traceback.rstrip("\n").endswith(message)
    assert set(TaskRun.objects.values_list("key", flat=True)) == {"before", "after"}
    assert row_of(before).status == row_of(after).status == TaskResultStatus.SUCCESSFUL
    # Its result reads back like any failed one.
    result = task_backends["default"].get_result(str(corrupt.pk))
    assert result.status == TaskResultStatus.FAILED


@pytest.mark.parametrize(
    "arguments",
    [
        pytest.param([], id="a-list"),
        pytest.param("args", id="a-string"),
        pytest.param({"args": 5, "kwargs": {}}, id="args-not-a-list"),
        pytest.param({"args": [], "kwargs": "key=x"}, id="kwargs-not-a-dict"),
    ],
)
def test_arguments_of_the_wrong_shape_fail_that_task_not_the_worker(transactional_db, arguments):
    corrupt = corrupt_row("tests.tasks.record_run", arguments=arguments)
    after = tasks.record_run.enqueue("after")

    run_worker("--threads", "1")

    corrupt.refresh_from_db()
    assert corrupt.status == TaskResultStatus.FAILED
    # Retrying cannot repair the row: one attempt, as for a missing function.
    assert corrupt.attempt_count == 1
    attempt = corrupt.attempts.get()
    assert attempt.exception_class_path == "dbtasks.exceptions.TaskArgumentsCorrupt"
    assert attempt.traceback.rstrip("\n").endswith(
        f"TaskArgumentsCorrupt: Task id={corrupt.pk} path=tests.tasks.record_run: its arguments "
        f"must be {{'args': [...], 'kwargs': {{...}}}}, got {arguments!r}."
    )
    assert row_of(after).status == TaskResultStatus.SUCCESSFUL
    assert set(TaskRun.objects.values_list("key", flat=True)) == {"after"}
    with pytest.raises(TaskResultDoesNotExist):
        task_backends["default"].get_result(str(corrupt.pk))
