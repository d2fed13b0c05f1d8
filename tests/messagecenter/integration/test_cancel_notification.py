"""Cancelling a notification that has not been sent: it never reaches ntfy."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from dbtasks.cancellation import AttemptControl
from dbtasks.cancellation import run_controlled
from dbtasks.exceptions import TaskCancelled
from dbtasks.models import DBTaskResult
from messagecenter.models import Notification
from messagecenter.tasks import send_notification
from tests.conftest import run_worker
from tests.deliveries import send_id
from tests.html import parse


def scheduled(client) -> Notification:
    later = (timezone.now() + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    client.post("/", {"message": "later", "priority": "3", "deliver_at": later})
    return Notification.objects.get()


def test_cancel_with_htmx_returns_the_cancelled_row(signed_in, ntfy, transactional_db):
    notification = scheduled(signed_in)
    url = reverse("notification-cancel", args=[notification.pk])

    response = signed_in.post(url, headers={"HX-Request": "true"})

    row = parse(response.content.decode()).find(f"#notification-{notification.pk}")
    assert row.attrs["data-status"] == "CANCELLED"
    assert row.find(".status").text == "Cancelled"
    assert "data-live" not in row.attrs  # final: no more polling
    assert row.find("button.retry").text == "Send anyway"
    run_worker()
    assert ntfy.requests == []


def test_cancel_without_javascript_redirects_and_the_list_shows_it(signed_in, ntfy, db):
    notification = scheduled(signed_in)

    response = signed_in.post(reverse("notification-cancel", args=[notification.pk]), follow=True)

    assert b"Cancelled: it will not be sent." in response.content
    row = parse(response.content.decode()).find(f"#notification-{notification.pk}")
    assert row.attrs["data-status"] == "CANCELLED"


def test_another_users_notification_is_404(signed_in, client, django_user_model, db):
    notification = scheduled(signed_in)
    other = django_user_model.objects.create_user("eve", password="pw-eve-12345")
    client.force_login(other)

    response = client.post(reverse("notification-cancel", args=[notification.pk]))

    assert response.status_code == 404


def test_a_sent_notification_is_not_cancelled(signed_in, ntfy, transactional_db):
    signed_in.post("/", {"message": "now", "priority": "3"})
    notification = Notification.objects.get()
    run_worker()

    response = signed_in.post(
        reverse("notification-cancel", args=[notification.pk]), headers={"HX-Request": "true"}
    )

    row = parse(response.content.decode()).find(f"#notification-{notification.pk}")
    assert row.attrs["data-status"] == "SUCCESSFUL"
    assert len(ntfy.requests) == 1


def test_cancelling_a_running_notification_asks_it_to_stop(signed_in, ntfy, db):
    signed_in.post("/", {"message": "now", "priority": "3"})
    notification = Notification.objects.get()
    # A worker has claimed it: it is RUNNING.
    DBTaskResult.objects.filter(pk=send_id(notification)).update(
        status="RUNNING", worker_id="elsewhere", attempt_count=1
    )

    response = signed_in.post(reverse("notification-cancel", args=[notification.pk]), follow=True)

    assert "Cancel requested" in response.content.decode()
    row = DBTaskResult.objects.get(pk=send_id(notification))
    assert row.status == "RUNNING"
    assert row.cancel_requested_at is not None


def test_a_cancelled_attempt_does_not_send(ntfy, db, django_user_model):
    owner = django_user_model.objects.create_user("bo", password="pw-bo-12345")
    notification = Notification.objects.create(owner=owner, message="stop me", priority=3)
    control = AttemptControl(row_id=1, attempt=1)
    control.stop(TaskCancelled("cancelled while running"))

    with pytest.raises(TaskCancelled):
        run_controlled(control, lambda: send_notification.call(notification.pk))
    assert ntfy.requests == []
