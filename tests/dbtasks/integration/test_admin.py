"""The dbtasks admin: list, filter, search, attempts with tracebacks, re-queue."""

from __future__ import annotations

import pytest
from django.urls import reverse

from dbtasks.models import DBTaskAttempt
from dbtasks.models import DBTaskResult
from tests import tasks
from tests.conftest import run_worker

CHANGELIST = reverse("admin:dbtasks_dbtaskresult_changelist")


@pytest.fixture
def finished_tasks(transactional_db):
    """One SUCCESSFUL echo task and one FAILED always_fails task (3 attempts)."""
    ok = tasks.echo.enqueue("hi")
    failed = tasks.always_fails.enqueue("boom")
    run_worker()
    return ok, failed


@pytest.mark.usefixtures("finished_tasks")
def test_changelist_shows_status_queue_path_and_attempts(admin_client):
    response = admin_client.get(CHANGELIST)

    assert response.status_code == 200
    content = response.content.decode()
    assert "tests.tasks.echo" in content
    assert "tests.tasks.always_fails" in content
    assert "SUCCESSFUL" in content
    assert "FAILED" in content


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"status__exact": "FAILED"}, {"tests.tasks.always_fails"}),
        ({"status__exact": "SUCCESSFUL"}, {"tests.tasks.echo"}),
        ({"queue_name__exact": "default"}, {"tests.tasks.echo", "tests.tasks.always_fails"}),
        ({"q": "always"}, {"tests.tasks.always_fails"}),
    ],
)
def test_changelist_filters_and_search(admin_client, finished_tasks, query, expected):
    response = admin_client.get(CHANGELIST, query)

    shown = {row.task_path for row in response.context["cl"].result_list}
    assert shown == expected


def test_search_by_id_matches_that_task_only(admin_client, finished_tasks):
    ok, _ = finished_tasks

    response = admin_client.get(CHANGELIST, {"q": ok.id})

    assert [row.pk for row in response.context["cl"].result_list] == [int(ok.id)]


def test_change_page_shows_each_attempt_with_its_traceback(admin_client, finished_tasks):
    _, failed = finished_tasks

    response = admin_client.get(reverse("admin:dbtasks_dbtaskresult_change", args=[failed.id]))

    assert response.status_code == 200
    content = response.content.decode()
    assert content.count("builtins.ValueError") == 3
    assert "ValueError: boom" in content


def test_requeue_action_makes_failed_tasks_ready_and_skips_others(admin_client, finished_tasks):
    ok, failed = finished_tasks

    response = admin_client.post(
        CHANGELIST,
        {"action": "requeue_failed", "_selected_action": [ok.id, failed.id]},
        follow=True,
    )

    assert response.status_code == 200
    failed_row = DBTaskResult.objects.get(pk=failed.id)
    assert failed_row.status == "READY"
    assert failed_row.finished_at is None
    assert DBTaskResult.objects.get(pk=ok.id).status == "SUCCESSFUL"
    messages = [str(message) for message in response.context["messages"]]
    assert messages == ["Re-queued 1 failed task(s).", "Skipped 1 task(s) that had not failed."]

    # It runs again: one more attempt, which fails like the others.
    run_worker()
    failed.refresh()
    assert failed.status == "FAILED"
    assert failed.attempts == 4


def test_rows_cannot_be_added_or_edited(admin_client, finished_tasks):
    ok, _ = finished_tasks

    assert admin_client.get(reverse("admin:dbtasks_dbtaskresult_add")).status_code == 403
    response = admin_client.post(
        reverse("admin:dbtasks_dbtaskresult_change", args=[ok.id]), {"status": "FAILED"}
    )
    assert response.status_code == 403
    assert DBTaskResult.objects.get(pk=ok.id).status == "SUCCESSFUL"


def test_cancel_action_cancels_ready_tasks_only(admin_client, finished_tasks):
    ok, _ = finished_tasks
    waiting = tasks.noop.enqueue()

    response = admin_client.post(
        CHANGELIST,
        {"action": "cancel_ready", "_selected_action": [ok.id, waiting.id]},
        follow=True,
    )

    messages = [str(message) for message in response.context["messages"]]
    assert messages == [
        "Cancelled 1 ready task(s).",
        "Skipped 1 task(s) that were not ready (running or finished).",
    ]
    waiting.refresh()
    assert waiting.status == "FAILED"
    assert [error.exception_class_path for error in waiting.errors] == [
        "dbtasks.exceptions.TaskCancelled"
    ]
    assert waiting.attempts == 0
    run_worker()
    waiting.refresh()
    assert waiting.attempts == 0  # a cancelled task never runs


def test_discard_action_deletes_failed_tasks_only(admin_client, finished_tasks):
    ok, failed = finished_tasks

    response = admin_client.post(
        CHANGELIST,
        {"action": "discard_failed", "_selected_action": [ok.id, failed.id]},
        follow=True,
    )

    messages = [str(message) for message in response.context["messages"]]
    assert messages == ["Discarded 1 failed task(s).", "Kept 1 task(s) that had not failed."]
    assert list(DBTaskResult.objects.values_list("pk", flat=True)) == [int(ok.id)]
    assert not DBTaskAttempt.objects.filter(result_id=failed.id).exists()


def test_request_cancel_action_marks_running_tasks_only(admin_client, finished_tasks):
    ok, _ = finished_tasks
    running = tasks.noop.enqueue()
    DBTaskResult.objects.filter(pk=running.id).update(status="RUNNING", worker_id="w")

    response = admin_client.post(
        CHANGELIST,
        {"action": "request_cancel", "_selected_action": [ok.id, running.id]},
        follow=True,
    )

    messages = [str(message) for message in response.context["messages"]]
    assert messages[0].startswith("Asked 1 running task(s) to stop")
    assert messages[1] == "Skipped 1 task(s) not running or asked already."
    assert DBTaskResult.objects.get(pk=running.id).cancel_requested_at is not None
    assert DBTaskResult.objects.get(pk=ok.id).cancel_requested_at is None
