"""The Notification admin: list, search, filters; no adding (the page queues the delivery)."""

from __future__ import annotations

import pytest

from messagecenter.models import Notification
from messagecenter.sending import send
from tests import tasks


@pytest.fixture
def admin_client(client, django_user_model):
    admin = django_user_model.objects.create_superuser("admin", "admin@example.com", "pw-0123")
    client.force_login(admin)
    return client


def test_changelist_lists_searches_and_filters(admin_client, django_user_model):
    owner = django_user_model.objects.create_user("carol")
    for message in ("Backup done", "Disk full"):
        send(Notification.objects.create(owner=owner, message=message))

    url = "/admin/messagecenter/notification/"
    response = admin_client.get(url)
    assert response.status_code == 200
    assert "Backup done" in response.content.decode()
    assert "/admin/dbtasks/dbtaskresult/" in response.content.decode()  # each links its task

    response = admin_client.get(url, {"q": "disk"})
    assert "Disk full" in response.content.decode()
    assert "Backup done" not in response.content.decode()

    assert admin_client.get(url, {"priority__exact": "3"}).status_code == 200
    assert admin_client.get(url, {"q": "carol"}).status_code == 200


def test_change_page_shows_the_task_result_id(admin_client, django_user_model):
    notification = Notification.objects.create(
        owner=django_user_model.objects.create_user("dave"), message="Hello"
    )
    send(notification)
    response = admin_client.get(f"/admin/messagecenter/notification/{notification.pk}/change/")
    assert response.status_code == 200
    task_url = f"/admin/dbtasks/dbtaskresult/{notification.task_result_id}/change/"
    assert (
        f'<a href="{task_url}">Task {notification.task_result_id}</a>' in response.content.decode()
    )
    assert "Queued" in response.content.decode()
    # The link leads to the task's admin page, which shows its arguments: this notification.
    assert admin_client.get(task_url).status_code == 200


def test_notifications_cannot_be_added_in_the_admin(admin_client):
    assert admin_client.get("/admin/messagecenter/notification/add/").status_code == 403


def test_the_task_page_links_back_to_its_notification(admin_client, django_user_model):
    owner = django_user_model.objects.create_user("erin")
    notification = Notification.objects.create(owner=owner, message="Hello back")
    send(notification)
    other = tasks.noop.enqueue()  # not a delivery: no link

    notification_url = f"/admin/messagecenter/notification/{notification.pk}/change/"
    link = f'<a href="{notification_url}">Notification {notification.pk}: Hello back</a>'
    # The channel's send, and the delivery report after it.
    for task_id in (notification.destinations.get().task_result_id, notification.task_result_id):
        page = admin_client.get(f"/admin/dbtasks/dbtaskresult/{task_id}/change/").content.decode()
        assert link in page

    response = admin_client.get(f"/admin/dbtasks/dbtaskresult/{other.id}/change/")
    assert response.status_code == 200
    assert "Notification " not in response.content.decode()
