"""The dbtasks admin: list, filter, search, attempts with tracebacks, re-queue."""

from __future__ import annotations

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from dbtasks.estimates import EstimatedCountPaginator
from dbtasks.models import DBTaskAttempt
from dbtasks.models import DBTaskResult
from tests import tasks
from tests.conftest import run_worker
from tests.ops_data import cancel

CHANGELIST = reverse("admin:dbtasks_dbtaskresult_changelist")


@pytest.fixture
def finished_tasks(transactional_db):
    """One SUCCESSFUL echo task and one FAILED always_fails task (3 attempts)."""
    ok = tasks.echo.enqueue("hi")
    failed = tasks.always_fails.enqueue("boom")
    run_worker()
    if connection.vendor == "postgresql":
        # The paginator trusts the planner's estimate above 10,000 rows: make
        # it describe these two rows, not the thousands an earlier test left
        # in the table's statistics (or its pages, before autovacuum).
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {DBTaskResult._meta.db_table}")
    return ok, failed


@pytest.mark.usefixtures("finished_tasks")
def test_changelist_shows_status_queue_path_and_attempts(admin_client):
    response = admin_client.get(CHANGELIST)

    assert response.status_code == 200
    content = response.content.decode()
    assert "tests.tasks.echo" in content
    assert "tests.tasks.always_fails" in content
    assert "Successful" in content
    assert "Failed" in content


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"state": "failed"}, {"tests.tasks.always_fails"}),
        ({"state": "successful"}, {"tests.tasks.echo"}),
        ({"state": "cancelled"}, set()),
        ({"queue_name": "default"}, {"tests.tasks.echo", "tests.tasks.always_fails"}),
        ({"queue_name": "low_priority"}, set()),
        ({"backend_name": "default"}, {"tests.tasks.echo", "tests.tasks.always_fails"}),
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


def test_cancelled_tasks_have_their_own_state_and_filter(admin_client, finished_tasks):
    cancelled = tasks.noop.enqueue()
    cancel(cancelled.id)
    waiting = tasks.noop.enqueue()
    later = tasks.noop.using(run_after=timezone.now() + timedelta(hours=1)).enqueue()

    def shown(**query):
        response = admin_client.get(CHANGELIST, query)
        return {
            str(row.pk): response.context["cl"].model_admin.state(row)
            for row in response.context["cl"].result_list
        }

    assert shown(state="cancelled") == {cancelled.id: "Cancelled"}
    # A cancelled task is not listed as failed, nor labelled so.
    assert cancelled.id not in shown(state="failed")
    assert shown()[cancelled.id] == "Cancelled"
    assert shown(state="ready") == {waiting.id: "Ready"}
    assert set(shown(state="scheduled")) == {later.id}
    content = admin_client.get(CHANGELIST).content.decode()
    for label in ["Ready", "Scheduled", "Blocked", "Running", "Successful", "Failed", "Cancelled"]:
        assert f"{label}</a>" in content


def test_times_are_shown_in_one_format_with_their_zone(admin_client, finished_tasks, settings):
    ok, failed = finished_tasks
    row = DBTaskResult.objects.get(pk=ok.id)

    content = admin_client.get(CHANGELIST).content.decode()
    assert f">{row.enqueued_at:%Y-%m-%d %H:%M:%S} UTC</time>" in content

    settings.TIME_ZONE = "Europe/Paris"
    detail = admin_client.get(reverse("admin:dbtasks_dbtaskresult_change", args=[failed.id]))
    text = detail.content.decode()
    local = timezone.localtime(row.enqueued_at, ZoneInfo("Europe/Paris"))
    assert local.strftime("%Z") in {"CET", "CEST"}
    assert re.search(r">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d CES?T</time>", text)


def test_the_paginator_counts_exactly_below_the_estimate_threshold(admin_client, finished_tasks):
    response = admin_client.get(CHANGELIST)

    paginator = response.context["cl"].paginator
    assert isinstance(paginator, EstimatedCountPaginator)
    assert (paginator.count, paginator.estimated) == (2, False)
    assert "About" not in response.content.decode()


def test_the_filters_read_no_distinct_values_from_the_table(
    admin_client, finished_tasks, django_assert_max_num_queries
):
    # Session, user, the page of rows, its count (or estimate), the attempts of
    # nothing: no SELECT DISTINCT over the task table for the filter choices.
    with CaptureQueriesContext(connection) as queries:
        admin_client.get(CHANGELIST, {"state": "failed"})
    assert not [q["sql"] for q in queries if "DISTINCT" in q["sql"].upper()]
