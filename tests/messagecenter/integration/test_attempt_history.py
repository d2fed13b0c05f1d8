"""A notification's attempt history: every attempt of the first send and of each Retry."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dbtasks.models import DBTaskResult
from messagecenter.models import Notification
from messagecenter.models import NotificationTask
from messagecenter.sending import send
from tests.conftest import run_worker
from tests.html import parse
from tests.messagecenter.conftest import HTMX
from tests.ntfy_server import Reply

pytestmark = pytest.mark.django_db(transaction=True)


def history(client, notification) -> list[str]:
    """The history's lines, as the row's "Attempt history" shows them."""
    response = client.get(f"/notifications/{notification.pk}/attempts/", **HTMX)
    assert response.status_code == 200
    return [" ".join(item.text.split()) for item in parse(response.content).find_all("li")]


def failed_then_retried(client, ntfy) -> Notification:
    """Refused (1 attempt, FAILED), then retried: a 500 (retried), then delivered."""
    ntfy.reply_next(Reply(status=403), Reply(status=500))
    client.post("/", {"message": "Hello", "priority": "3"})
    notification = Notification.objects.get()
    run_worker()
    response = client.post(f"/notifications/{notification.pk}/retry/", **HTMX)
    assert parse(response.content).find("li.notification").attrs["data-status"] == "READY"
    run_worker()
    return notification


def test_earlier_failures_stay_after_retry(signed_in, ntfy):
    notification = failed_then_retried(signed_in, ntfy)

    lines = history(signed_in, notification)
    assert [line.split(",")[0] for line in lines] == ["Attempt 1", "Retry 1", "Retry 1"]
    assert lines[0].startswith("Attempt 1, ")
    assert "failed." in lines[0]
    assert "PermanentFailure: ntfy answered 403" in lines[0]
    assert lines[1].startswith("Retry 1, attempt 1, ")
    assert "ntfy answered 500" in lines[1]
    assert lines[2].startswith("Retry 1, attempt 2, ")
    assert lines[2].endswith("delivered.")
    # The same on the page without JavaScript.
    page = signed_in.get(f"/notifications/{notification.pk}/attempts/").content.decode()
    assert "Retry 1, attempt 2" in page


def test_each_of_its_tasks_links_back_to_the_notification_in_the_admin(signed_in, alice, ntfy):
    notification = failed_then_retried(signed_in, ntfy)
    alice.is_staff = alice.is_superuser = True
    alice.save()
    signed_in.force_login(alice)
    link = f'<a href="/admin/messagecenter/notification/{notification.pk}/change/">'
    for task in notification.tasks.all():
        page = signed_in.get(f"/admin/dbtasks/dbtaskresult/{task.task_result_id}/change/")
        assert link in page.content.decode()


def test_a_purged_earlier_task_is_said_to_be_gone(signed_in, ntfy):
    notification = failed_then_retried(signed_in, ntfy)
    first = NotificationTask.objects.filter(notification=notification).first()
    assert first is not None
    DBTaskResult.objects.filter(pk=first.task_result_id).delete()

    lines = history(signed_in, notification)
    assert lines[0] == "First send: its record was deleted by the retention policy."
    assert len(lines) == 3


def test_the_history_costs_the_same_queries_however_many_retries(signed_in, alice, ntfy):
    ntfy.reply_always(Reply(status=403))  # every send fails at once
    counts = []
    for retries in (0, 4):
        notification = Notification.objects.create(owner=alice, message=f"{retries} retries")
        send(notification)
        run_worker()
        for _ in range(retries):
            signed_in.post(f"/notifications/{notification.pk}/retry/")
            run_worker()
        assert notification.tasks.count() == retries + 1
        with CaptureQueriesContext(connection) as queries:
            lines = history(signed_in, notification)
        assert len(lines) == retries + 1
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_the_migration_starts_each_history_with_the_task_it_remembers(alice):
    kept = Notification.objects.create(owner=alice, message="old", task_result_id="41")
    Notification.objects.create(owner=alice, message="never enqueued")  # no task id
    migration = importlib.import_module("messagecenter.migrations.0008_notification_tasks")
    NotificationTask.objects.all().delete()

    migration.record_latest_tasks(apps, None)

    assert list(NotificationTask.objects.values_list("notification", "task_result_id")) == [
        (kept.pk, "41")
    ]
